"""A throwaway certificate authority and a broker certificate for 127.0.0.1, made with openssl."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class BrokerTls:
    """What a SASL_SSL broker and its clients need: the CA clients trust, the broker's keystore."""

    ca: Path
    keystore: Path
    keystore_password: str = field(repr=False)


def _openssl(*arguments: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("`openssl` not found: apt-get install openssl")
    subprocess.run([openssl, *arguments], cwd=cwd, check=True, capture_output=True)


def _key_and_request(name: str, subject: str, cwd: Path) -> None:
    # P-256 keys: made in milliseconds, understood by Java's and Python's TLS alike.
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
        cwd=cwd,
    )  # fmt: skip


def certificate_authority(directory: Path, name: str = "ca") -> Path:
    """A self-signed CA valid two days: `<name>.pem` (its certificate) and `<name>.key`."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
        "-subj", f"/CN=motcua test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.pem"


def broker_tls(directory: Path) -> BrokerTls:
    """A CA and, signed by it, the broker's certificate for 127.0.0.1 (clients check the
    name), packed with its key into a PKCS#12 keystore for the broker."""
    ca = certificate_authority(directory)
    _key_and_request("broker", "/CN=127.0.0.1", directory)
    (directory / "broker.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", "broker.csr", "-CA", ca.name, "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "broker.pem", "-days", "2", "-extfile", "broker.ext",
        cwd=directory,
    )  # fmt: skip
    password = secrets.token_hex(16)
    _openssl(
        "pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-certfile", ca.name,
        "-name", "kafka", "-out", "broker.p12", "-passout", f"pass:{password}",
        cwd=directory,
    )  # fmt: skip
    return BrokerTls(ca, directory / "broker.p12", password)
