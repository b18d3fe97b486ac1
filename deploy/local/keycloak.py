"""Keycloak, the demo's identity provider, run here without Docker.

The distribution comes from Maven Central (org.keycloak:keycloak-quarkus-dist, cached under
~/.cache/motcua/) and runs in development mode on the loopback with an in-memory database, so every
start is fresh. It needs Java 21 or newer: the JDK is looked up in $MOTCUA_KEYCLOAK_JAVA_HOME,
$JAVA_HOME and /usr/lib/jvm (the machine's default Java may be 17).

`realm()` creates what motcua needs in it: a realm, a public client the counters' and officers'
applications sign in with, the `motcua` audience, and the user attributes `motcua_unit` and
`motcua_role` put into access tokens as the claims the services read (the same settings a
province's own Keycloak needs, see docs/operations.md "Identity provider").

    python deploy/local/keycloak.py up     # start it for the demo, write .local/keycloak.env
    python deploy/local/keycloak.py down
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from motcua_local import (
    STATE_DIR,
    Guard,
    PlatformError,
    _require,
    cache_dir,
    free_port,
    http_ok,
    pid_alive,
    port_open,
    stop_pid,
)

from shared.auth import Role
from tools.simulate.tokens import (
    CLIENT,
    REALM,
    ROLE_ATTRIBUTE,
    UNIT_ATTRIBUTE,
    clerk_user,
)

KEYCLOAK_VERSION = "26.5.6"
MIN_JAVA = 21
AUDIENCE = "motcua"  # the `aud` the services require (MOTCUA_OIDC_AUDIENCE)
ADMIN = "admin"
# The clerks made at `up`, to sign in by hand: the Public Administration Service Center of
# phường Ba Đình, Hà Nội.
DEMO_UNIT = "T01.X00004"
STATE_FILE = STATE_DIR / "keycloak.json"
ENV_FILE = STATE_DIR / "keycloak.env"


def _java_version(home: Path) -> int:
    """The feature version of the JDK at `home` (its `release` file), 0 if none is there."""
    release = home / "release"
    if not (home / "bin" / "java").exists() or not release.exists():
        return 0
    found = re.search(r'JAVA_VERSION="(\d+)', release.read_text())
    return int(found.group(1)) if found else 0


def java_home() -> Path:
    """A JDK new enough for Keycloak, newest first among those found."""
    named = [os.environ.get("MOTCUA_KEYCLOAK_JAVA_HOME"), os.environ.get("JAVA_HOME")]
    candidates = [Path(p) for p in named if p]
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates += sorted(jvm.iterdir(), key=_java_version, reverse=True)
    for home in candidates:
        if _java_version(home) >= MIN_JAVA:
            return home
    raise PlatformError(
        f"Keycloak needs Java {MIN_JAVA} or newer: none in $MOTCUA_KEYCLOAK_JAVA_HOME, $JAVA_HOME "
        "or /usr/lib/jvm (install one, e.g. apt-get install openjdk-21-jre-headless)"
    )


def ensure_distribution(version: str = KEYCLOAK_VERSION) -> Path:
    """The unpacked distribution, fetched from Maven Central once per version."""
    home = cache_dir() / f"keycloak-{version}"
    dist = home / f"keycloak-{version}"
    marker = home / "complete"
    if marker.exists():
        return dist
    mvn = _require("mvn", "install Maven (apt-get install maven) to fetch Keycloak")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    print(f"keycloak: fetching Keycloak {version} from Maven Central (~160 MB)...", flush=True)
    proc = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "dependency:copy",
            f"-Dartifact=org.keycloak:keycloak-quarkus-dist:{version}:zip",
            f"-DoutputDirectory={home}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    archive = home / f"keycloak-quarkus-dist-{version}.zip"
    if proc.returncode != 0 or not archive.exists():
        raise PlatformError(f"mvn could not fetch Keycloak {version}:\n{proc.stdout}{proc.stderr}")
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(home)
    archive.unlink()
    # zipfile drops the permission bits: the launch scripts must be executable again.
    for script in (dist / "bin").glob("*.sh"):
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    marker.write_text(version)
    return dist


@dataclass
class Keycloak:
    """One Keycloak server on the loopback (development mode, in-memory database)."""

    data_dir: Path
    port: int
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    guard: Guard | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/{REALM}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/certs"

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    def service_env(self) -> dict[str, str]:
        """The services' settings to accept this realm's access tokens."""
        return {
            "MOTCUA_OIDC_ISSUER": self.issuer,
            "MOTCUA_OIDC_AUDIENCE": AUDIENCE,
            "MOTCUA_OIDC_JWKS_URL": self.jwks_url,
            # The realm's mappers give each claim its user attribute's name.
            "MOTCUA_OIDC_UNIT_CLAIM": UNIT_ATTRIBUTE,
            "MOTCUA_OIDC_ROLE_CLAIM": ROLE_ATTRIBUTE,
        }

    def start(self, timeout: float = 180.0) -> None:
        dist = ensure_distribution()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "JAVA_HOME": str(java_home()),
            "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
        }
        with (self.data_dir / "keycloak.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(dist / "bin" / "kc.sh"),
                    "start-dev",
                    "--db=dev-mem",
                    "--http-host=127.0.0.1",
                    f"--http-port={self.port}",
                    # The management interface (health, metrics) would take port 9000.
                    "--http-management-port=0",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.proc.pid  # kc.sh execs the JVM: this is Keycloak's own pid
        if self.guard is not None:
            self.guard.watch("pid", str(self.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PlatformError(
                    f"Keycloak exited with {self.proc.returncode}; see {self.data_dir}/keycloak.log"
                )
            if port_open(self.port) and http_ok(f"{self.url}/realms/master", timeout=3):
                return
            time.sleep(0.5)
        raise PlatformError(f"Keycloak did not start in {timeout:.0f}s; see {self.data_dir}")

    def stop(self) -> None:
        if self.pid is not None:
            stop_pid(self.pid)
            if self.guard is not None:
                self.guard.forget("pid", str(self.pid))
        if self.proc is not None:
            self.proc.wait()
        self.pid = None

    # ------------------------------------------------------------------ the admin REST API

    def admin_token(self) -> str:
        answer = call(
            "POST",
            f"{self.url}/realms/master/protocol/openid-connect/token",
            form={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": ADMIN,
                "password": self.admin_password,
            },
        )
        return str(answer["access_token"])

    def realm(self) -> None:
        """Create motcua's realm, client and claims (see the module)."""
        token = self.admin_token()
        call("POST", f"{self.url}/admin/realms", token=token, body=realm_representation())
        # Since Keycloak 24 attributes a realm's user profile does not declare are dropped:
        # let administrators (and the demo's provisioning) set motcua's two.
        profile_url = f"{self.url}/admin/realms/{REALM}/users/profile"
        profile = call("GET", profile_url, token=token)
        profile["unmanagedAttributePolicy"] = "ADMIN_EDIT"
        call("PUT", profile_url, token=token, body=profile)

    def clerk(self, unit: str, role: Role, password: str) -> str:
        """Create a clerk of `unit` in `role` (the user the simulator would create); its name."""
        user = clerk_user(unit, role, password)
        url = f"{self.url}/admin/realms/{REALM}/users"
        call("POST", url, token=self.admin_token(), body=user)
        return str(user["username"])


def _claim_mapper(attribute: str) -> dict[str, Any]:
    return {
        "name": attribute,
        "protocol": "openid-connect",
        "protocolMapper": "oidc-usermodel-attribute-mapper",
        "config": {
            "user.attribute": attribute,
            "claim.name": attribute,
            "jsonType.label": "String",
            "access.token.claim": "true",
            "id.token.claim": "false",
            "userinfo.token.claim": "false",
        },
    }


def realm_representation() -> dict[str, Any]:
    """The realm: short-lived access tokens, one public client with the unit, role and audience
    mappers. Password sign-in (direct access grants) is for the demo's simulated counters; a
    province's applications would use the authorization code flow instead."""
    return {
        "realm": REALM,
        "enabled": True,
        "accessTokenLifespan": 300,
        "clients": [
            {
                "clientId": CLIENT,
                "publicClient": True,
                "directAccessGrantsEnabled": True,
                "standardFlowEnabled": False,
                "protocolMappers": [
                    _claim_mapper(UNIT_ATTRIBUTE),
                    _claim_mapper(ROLE_ATTRIBUTE),
                    {
                        "name": "audience",
                        "protocol": "openid-connect",
                        "protocolMapper": "oidc-audience-mapper",
                        "config": {
                            "included.custom.audience": AUDIENCE,
                            "access.token.claim": "true",
                            "id.token.claim": "false",
                        },
                    },
                ],
            }
        ],
    }


def call(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: Any = None,
    form: dict[str, str] | None = None,
) -> Any:
    """One JSON call to Keycloak; PlatformError with its answer when it refuses."""
    headers = {"Accept": "application/json"}
    data = None
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    # Our own server on the loopback: the scheme is not the caller's to choose.
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as got:  # noqa: S310
            raw = got.read()
    except urllib.error.HTTPError as exc:
        said = exc.read().decode(errors="replace")[:500]
        raise PlatformError(f"Keycloak refused {method} {url}: {exc.code} {said}") from exc
    return json.loads(raw) if raw else None


# ------------------------------------------------------------------ `make demo`


def up() -> Keycloak:
    """Start the demo's Keycloak (once) and write the services' and simulator's settings."""
    if STATE_FILE.exists():
        state = json.loads(STATE_FILE.read_text())
        if pid_alive(state["pid"]) and port_open(state["port"]):
            return Keycloak(STATE_DIR / "keycloak", state["port"], state["password"], state["pid"])
    keycloak = Keycloak(STATE_DIR / "keycloak", free_port())
    print(f"keycloak: starting Keycloak {KEYCLOAK_VERSION} on {keycloak.url}...", flush=True)
    clerks = secrets.token_urlsafe(12)
    try:
        keycloak.start()
        keycloak.realm()
        keycloak.clerk(DEMO_UNIT, "counter", clerks)
        keycloak.clerk(DEMO_UNIT, "officer", clerks)
    except BaseException:
        keycloak.stop()  # not half-started: the next `up` starts afresh
        raise
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(
        json.dumps(
            {"pid": keycloak.pid, "port": keycloak.port, "password": keycloak.admin_password}
        )
    )
    lines = [f"export {k}={v}" for k, v in keycloak.service_env().items()]
    lines += [
        f"export MOTCUA_KEYCLOAK_URL={keycloak.url}",
        f"export MOTCUA_KEYCLOAK_ADMIN_PASSWORD={keycloak.admin_password}",
        # Every clerk's: the two made here and those the simulator makes.
        f"export MOTCUA_KEYCLOAK_CLERK_PASSWORD={clerks}",
    ]
    ENV_FILE.write_text("\n".join(lines) + "\n")
    ENV_FILE.chmod(0o600)
    return keycloak


def down() -> None:
    if STATE_FILE.exists():
        stop_pid(json.loads(STATE_FILE.read_text())["pid"])
        STATE_FILE.unlink()
    ENV_FILE.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down"])
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            keycloak = up()
            print(f"keycloak: realm {REALM} at {keycloak.issuer} (admin console {keycloak.url})")
        else:
            down()
    except PlatformError as exc:
        print(f"keycloak: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
