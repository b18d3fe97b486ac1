"""Run a real Kafka broker, PostgreSQL and Prometheus on this machine, without Docker.

Stdlib only, so the same code serves the `make demo` platform (state under `.local/`) and the test
harness (throwaway directories, free ports). Kafka is assembled from Maven Central jars cached under
the user's cache directory keyed by version, PostgreSQL and Prometheus come from Debian's packages.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

KAFKA_VERSION = "4.1.1"
SLF4J_VERSION = "2.0.17"
LOG4J_VERSION = "2.25.3"
PG_VERSION = "15"
REPO_ROOT = Path(__file__).resolve().parents[2]


class PlatformError(RuntimeError):
    """Something the platform needs is missing or did not start; the message says what to do."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "motcua"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as dead.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def stop_pid(pid: int, timeout: float = 30.0) -> None:
    if not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether our own server on the loopback answers 200 at `url`."""
    # Over http, to a URL we built: the scheme is not the caller's to choose.
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


def _require(tool: str, hint: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise PlatformError(f"`{tool}` not found: {hint}")
    return found


# --------------------------------------------------------------------------- the guard


class Guard:
    """A process of its own that stops the servers it watches once this process is gone.

    The broker and the cluster run in sessions of their own (Ctrl-C must reach the tests, not
    them), so nothing stops them if their starter dies without its cleanup: SIGKILL, an OOM kill.
    The guard reads what to watch from a pipe; the pipe closing without a release (the starter
    gone, however it ended) is its cue to stop what it still watches.
    """

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "guard"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
        )

    def _say(self, line: str) -> None:
        assert self._proc.stdin is not None
        # A guard that is gone cannot be told; the caller stops its servers itself all the same.
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.write(line + "\n")
            self._proc.stdin.flush()

    def watch(self, kind: str, what: str) -> None:
        """`pid <n>` (stopped by signal) or `pgdata <directory>` (stopped by pg_ctl)."""
        self._say(f"watch {kind} {what}")

    def forget(self, kind: str, what: str) -> None:
        """Stopped already: a pid may be another process's by the time the guard acts."""
        self._say(f"forget {kind} {what}")

    def release(self) -> None:
        """Everything watched was stopped: the guard ends without acting."""
        assert self._proc.stdin is not None
        self._say("done")
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()
        self._proc.wait()


def guard(lines: Iterator[str]) -> None:
    """The guard's side: follow what to watch until the pipe closes; then stop it, unless told
    it is done."""
    watched: set[tuple[str, str]] = set()
    for line in lines:
        verb, _, rest = line.strip().partition(" ")
        kind, _, what = rest.partition(" ")
        if verb == "done":
            return
        if verb == "watch":
            watched.add((kind, what))
        elif verb == "forget":
            watched.discard((kind, what))
    for kind, what in watched:
        if kind == "pid":
            stop_pid(int(what), timeout=60.0)
        elif kind == "pgdata":
            with contextlib.suppress(PlatformError):  # the others are stopped all the same
                stop_cluster(Path(what))


# --------------------------------------------------------------------------- Kafka

_KAFKA_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>motcua.local</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId>
      <version>{slf4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """status = error
appender.f.type = File
appender.f.name = F
appender.f.fileName = ${sys:kafka.logs.dir}/server.log
appender.f.layout.type = PatternLayout
appender.f.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.f.ref = F
logger.ready.name = kafka.server.KafkaRaftServer
logger.ready.level = INFO
"""


def ensure_kafka_libs(version: str = KAFKA_VERSION) -> Path:
    """Collect the broker's runtime jars once per version; later calls return the cached folder."""
    target = cache_dir() / f"kafka-{version}" / "libs"
    marker = target.parent / "complete"
    if marker.exists():
        return target
    mvn = _require("mvn", "install Maven (apt-get install maven) to assemble the Kafka broker")
    work = target.parent / "build"
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "pom.xml").write_text(
        _KAFKA_POM.format(kafka=version, slf4j=SLF4J_VERSION, log4j=LOG4J_VERSION)
    )
    print(f"motcua-local: fetching Apache Kafka {version} jars from Maven Central...", flush=True)
    proc = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={target}",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise PlatformError(f"mvn could not fetch Kafka {version}:\n{proc.stdout}\n{proc.stderr}")
    shutil.rmtree(work, ignore_errors=True)
    marker.write_text(version)
    return target


@dataclass(frozen=True)
class SaslSsl:
    """The broker's client listener speaks SASL_SSL (SCRAM-SHA-512 over TLS) instead of PLAINTEXT.

    `keystore`: the broker's key and certificate chain (PKCS#12); `truststore`: the CA (PEM) the
    broker trusts when it connects to itself. `users`: SCRAM-SHA-512 credentials written into
    the cluster's metadata when the storage is formatted (KRaft has no ZooKeeper to hold them
    before the first start); the first user is the broker's own, for inter-broker connections.
    """

    keystore: Path
    keystore_password: str = field(repr=False)
    truststore: Path
    users: Mapping[str, str] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.users:
            raise PlatformError("SaslSsl needs at least the broker's own SCRAM user")
        for name, password in self.users.items():
            # The format tool parses `name=...,password=...` itself: keep both to safe characters.
            if not (name.replace("-", "").isalnum() and password.replace("-", "").isalnum()):
                raise PlatformError("SCRAM user names and passwords: letters, digits and '-'")

    def listener_properties(self, port: int, controller_port: int) -> list[str]:
        broker_user, broker_password = next(iter(self.users.items()))
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{broker_user}" password="{broker_password}";'
        )
        return [
            f"listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=SASL_SSL://127.0.0.1:{port}",
            "inter.broker.listener.name=SASL_SSL",
            # The controller listener stays on the loopback without TLS: only the broker uses it.
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas}",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={self.keystore}",
            f"ssl.keystore.password={self.keystore_password}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.truststore}",
        ]

    def format_arguments(self) -> list[str]:
        arguments = []
        for name, password in self.users.items():
            arguments += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
        return arguments


@dataclass
class Kafka:
    """A single-node KRaft broker (combined broker + controller); PLAINTEXT unless `sasl_ssl`."""

    data_dir: Path
    port: int
    controller_port: int
    pid: int | None = None
    # Kept so the child is reaped by us, not reported by Popen.__del__ as still running.
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    guard: Guard | None = field(default=None, repr=False)
    sasl_ssl: SaslSsl | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _listener_properties(self) -> list[str]:
        if self.sasl_ssl is not None:
            return self.sasl_ssl.listener_properties(self.port, self.controller_port)
        return [
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        ]

    def start(self, timeout: float = 90.0) -> None:
        if self.pid is not None and pid_alive(self.pid) and port_open(self.port):
            return
        java = _require(
            "java", "install a Java 17+ runtime (apt-get install openjdk-17-jre-headless)"
        )
        libs = ensure_kafka_libs()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        logs = self.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        props = self.data_dir / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    *self._listener_properties(),
                    "controller.listener.names=CONTROLLER",
                    f"log.dirs={self.data_dir / 'data'}",
                    "num.partitions=4",
                    "auto.create.topics.enable=true",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=4",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "",
                ]
            )
        )
        if self.sasl_ssl is not None:
            # It holds the keystore's and the broker user's passwords.
            props.chmod(0o600)
        log4j = self.data_dir / "log4j2.properties"
        log4j.write_text(_LOG4J2)
        classpath = f"{libs}/*"
        if not (self.data_dir / "data" / "meta.properties").exists():
            cluster_id = str(uuid.uuid4().hex[:22])
            subprocess.run(
                [
                    java,
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(props),
                    "-g",
                    *(self.sasl_ssl.format_arguments() if self.sasl_ssl is not None else []),
                ],
                check=True,
                capture_output=True,
            )
        server_log = logs / "server.log"
        start_offset = server_log.stat().st_size if server_log.exists() else 0
        with (logs / "stdout.log").open("ab") as out:
            proc = subprocess.Popen(
                [
                    java,
                    "-Xms256m",
                    "-Xmx768m",
                    "-XX:+UseG1GC",
                    "-Djava.awt.headless=true",
                    f"-Dkafka.logs.dir={logs}",
                    f"-Dlog4j2.configurationFile={log4j}",
                    "-cp",
                    classpath,
                    "kafka.Kafka",
                    str(props),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = proc.pid
        self.proc = proc
        if self.guard is not None:
            self.guard.watch("pid", str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise PlatformError(f"Kafka exited with {proc.returncode}; see {logs}")
            if server_log.exists():
                with server_log.open("rb") as fh:
                    fh.seek(start_offset)
                    if b"Kafka Server started" in fh.read() and port_open(self.port):
                        return
            time.sleep(0.2)
        raise PlatformError(f"Kafka did not start within {timeout:.0f}s; see {logs}")

    def stop(self) -> None:
        if self.pid is not None:
            stop_pid(self.pid, timeout=60.0)
            if self.guard is not None:
                self.guard.forget("pid", str(self.pid))
        if self.proc is not None:
            self.proc.wait()


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bin(tool: str) -> str:
    candidate = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin/{tool}")
    if candidate.exists():
        return str(candidate)
    for found in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), reverse=True):
        return str(found)
    return _require(tool, "install PostgreSQL (apt-get install postgresql)")


def _as_postgres(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; Debian's package provides the `postgres` user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _reachable_by_postgres(directory: Path) -> None:
    """Let the postgres user (we run as root) traverse every parent of `directory`. Again at
    each stop: another pytest session on the machine resets /tmp/pytest-of-root to 0700, and a
    pg_ctl that cannot reach its cluster would leave it running."""
    if os.geteuid() != 0:
        return
    for parent in directory.parents:
        if parent == Path("/"):
            break
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)


def stop_cluster(pgdata: Path) -> None:
    if (pgdata / "postmaster.pid").exists():
        _reachable_by_postgres(pgdata)
        stopped = subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"]),
            check=False,
            capture_output=True,
            text=True,
        )
        if stopped.returncode != 0 and (pgdata / "postmaster.pid").exists():
            raise PlatformError(f"pg_ctl could not stop {pgdata}: {stopped.stderr.strip()}")


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster made with initdb, listening on 127.0.0.1 with trust auth."""

    data_dir: Path
    port: int
    pid: int | None = None
    guard: Guard | None = field(default=None, repr=False)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 60.0) -> None:
        if self.pid is not None and pid_alive(self.pid) and port_open(self.port):
            return
        pgdata = self.data_dir / "pgdata"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, "postgres", "postgres")
        _reachable_by_postgres(self.data_dir)
        if not (pgdata / "PG_VERSION").exists():
            subprocess.run(
                _as_postgres(
                    [
                        _pg_bin("initdb"),
                        "-D",
                        str(pgdata),
                        "-U",
                        "postgres",
                        "-A",
                        "trust",
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                        "--no-sync",
                    ]
                ),
                check=True,
                capture_output=True,
            )
        if self.guard is not None:
            self.guard.watch("pgdata", str(pgdata))
        log = self.data_dir / "postgres.log"
        options = (
            f"-p {self.port} -h 127.0.0.1 -k {self.data_dir} -c fsync=on "
            "-c max_connections=200 -c shared_buffers=256MB -c synchronous_commit=on"
        )
        subprocess.run(
            _as_postgres(
                [
                    _pg_bin("pg_ctl"),
                    "-D",
                    str(pgdata),
                    "-l",
                    str(log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        pidfile = pgdata / "postmaster.pid"
        self.pid = int(pidfile.read_text().splitlines()[0])

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def stop(self) -> None:
        stop_cluster(self.pgdata)
        if self.guard is not None:
            self.guard.forget("pgdata", str(self.pgdata))

    def create_database(self, name: str) -> str:
        psql = _pg_bin("psql")
        exists = subprocess.run(
            [
                psql,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{name}'",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        if exists.stdout.strip() != "1":
            subprocess.run(
                [
                    psql,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-c",
                    f'CREATE DATABASE "{name}"',
                ],
                check=True,
                capture_output=True,
            )
        return self.dsn_for(name)


# --------------------------------------------------------------------------- Prometheus


# One job per service, named as in Kubernetes (docs/metrics.md): job -> "host:port" targets. A
# plain list of targets is the metrics service's replicas.
Targets = Mapping[str, Sequence[str]] | Sequence[str]


def scrape_jobs(targets: Targets) -> dict[str, list[str]]:
    if isinstance(targets, Mapping):
        return {job: list(addresses) for job, addresses in targets.items()}
    if isinstance(targets, str):
        raise TypeError("targets: a list of host:port, or a mapping of job to such a list")
    return {"motcua-metrics": list(targets)}


@dataclass
class Prometheus:
    """A Prometheus server scraping the given targets every second."""

    data_dir: Path
    port: int
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(
        self, targets: Targets, rule_files: Sequence[Path] = (), evaluation_interval: str = "1s"
    ) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "prometheus.yml"
        lines = [
            "global:",
            "  scrape_interval: 1s",
            f"  evaluation_interval: {evaluation_interval}",
        ]
        if rule_files:
            lines.append("rule_files:")
            lines += [f"  - {path}" for path in rule_files]
        lines.append("scrape_configs:")
        for job, addresses in scrape_jobs(targets).items():
            lines += [
                f"  - job_name: {job}",
                "    static_configs:",
                "      - targets: [" + ", ".join(f"'{t}'" for t in addresses) + "]",
            ]
        lines.append("")
        config.write_text("\n".join(lines))
        return config

    def start(
        self,
        targets: Targets,
        timeout: float = 30.0,
        rule_files: Sequence[Path] = (),
        evaluation_interval: str = "1s",
    ) -> None:
        """Scrape `targets` (a mapping job -> targets, or the metrics service's replicas).

        Already running (`make demo` twice): the new configuration is loaded in place.
        """
        binary = _require("prometheus", "install Prometheus (apt-get install prometheus)")
        config = self.write_config(targets, rule_files, evaluation_interval)
        if self.pid is not None and pid_alive(self.pid):
            self.reload()
            return
        with (self.data_dir / "prometheus.log").open("ab") as out:
            proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = proc.pid
        self.proc = proc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise PlatformError(
                    f"Prometheus exited with {proc.returncode}; see {self.data_dir}"
                )
            # The port opens before the storage is loaded; until then the API answers 503.
            if port_open(self.port) and self._ready():
                return
            time.sleep(0.2)
        raise PlatformError("Prometheus did not start in time")

    def _ready(self) -> bool:
        return http_ok(f"{self.url}/-/ready")

    def reload(self) -> None:
        """Re-read the configuration file (the lifecycle API is enabled at start)."""
        # Our own server on the loopback, over http: the scheme is not the caller's to choose.
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                response.read()
        except OSError as exc:
            raise PlatformError(f"Prometheus did not reload its configuration: {exc}") from exc

    def stop(self) -> None:
        if self.pid is not None:
            stop_pid(self.pid)
        if self.proc is not None:
            self.proc.wait()


# ------------------------------------------------------------------ the `make demo` platform

STATE_DIR = REPO_ROOT / ".local"
STATE_FILE = STATE_DIR / "platform.json"


def _load_state() -> dict[str, int]:
    if STATE_FILE.exists():
        data: dict[str, int] = json.loads(STATE_FILE.read_text())
        return data
    return {}


def _save_state(state: dict[str, int]) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps(state, indent=2))


def _components(state: dict[str, int]) -> tuple[Kafka, Postgres, Prometheus]:
    kafka = Kafka(
        STATE_DIR / "kafka",
        state["kafka_port"],
        state["kafka_controller_port"],
        state.get("kafka_pid"),
    )
    postgres = Postgres(STATE_DIR / "postgres", state["postgres_port"], state.get("postgres_pid"))
    prometheus = Prometheus(
        STATE_DIR / "prometheus", state["prometheus_port"], state.get("prometheus_pid")
    )
    return kafka, postgres, prometheus


def write_env(state: dict[str, int], postgres: Postgres, kafka: Kafka) -> Path:
    """The shell environment the services read; `make demo` sources it."""
    env = STATE_DIR / "env"
    env.write_text(
        "\n".join(
            [
                f"export MOTCUA_KAFKA_BOOTSTRAP={kafka.bootstrap}",
                f"export MOTCUA_DATABASE_URL={postgres.dsn_for('motcua')}",
                f"export MOTCUA_PROMETHEUS_URL=http://127.0.0.1:{state['prometheus_port']}",
                f"export MOTCUA_INTAKE_PORT={state['intake_port']}",
                f"export MOTCUA_PROCESSING_PORT={state['processing_port']}",
                f"export MOTCUA_METRICS_PORT={state['metrics_port']}",
                "",
            ]
        )
    )
    return env


def up() -> dict[str, int]:
    state = _load_state()
    for key in (
        "kafka_port",
        "kafka_controller_port",
        "postgres_port",
        "prometheus_port",
        "intake_port",
        "processing_port",
        "metrics_port",
    ):
        if key not in state:
            state[key] = free_port()
    kafka, postgres, prometheus = _components(state)
    postgres.start()
    postgres.create_database("motcua")
    kafka.start()
    prometheus.start(
        {
            f"motcua-{service}": [f"127.0.0.1:{state[f'{service}_port']}"]
            for service in ("intake", "processing", "metrics")
        },
        # The recording rules and alerts of deploy/k8s, as in a cluster; evaluated every 5 s so
        # that a demo left running does not recompute the 7-day windows every second.
        rule_files=[REPO_ROOT / "deploy" / "prometheus" / "rules.yml"],
        evaluation_interval="5s",
    )
    state.update(
        kafka_pid=kafka.pid or 0, postgres_pid=postgres.pid or 0, prometheus_pid=prometheus.pid or 0
    )
    _save_state(state)
    write_env(state, postgres, kafka)
    return state


def status() -> dict[str, str]:
    state = _load_state()
    if not state:
        return {"platform": "not started"}
    report = {}
    for name, port in (
        ("kafka", state["kafka_port"]),
        ("postgres", state["postgres_port"]),
        ("prometheus", state["prometheus_port"]),
        # Started by `make demo`, scraped by the Prometheus above (jobs motcua-<service>).
        ("intake", state["intake_port"]),
        ("processing", state["processing_port"]),
        ("metrics", state["metrics_port"]),
    ):
        alive = port_open(port)
        report[name] = f"{'up' if alive else 'down'} on 127.0.0.1:{port}"
    return report


def down() -> None:
    state = _load_state()
    if not state:
        return
    kafka, postgres, prometheus = _components(state)
    prometheus.stop()
    kafka.stop()
    postgres.stop()
    for key in ("kafka_pid", "postgres_pid", "prometheus_pid"):
        state.pop(key, None)
    _save_state(state)


@contextlib.contextmanager
def throwaway(base: Path) -> Iterator[tuple[Kafka, Postgres]]:
    """A broker and a cluster on free ports under `base`, stopped on exit (for the tests), and
    by a guard if this process dies without its cleanup."""
    watch = Guard()
    kafka = Kafka(base / "kafka", free_port(), free_port(), guard=watch)
    postgres = Postgres(base / "postgres", free_port(), guard=watch)
    try:
        postgres.start()
        kafka.start()
        yield kafka, postgres
    finally:
        kafka.stop()
        postgres.stop()
        watch.release()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="motcua-local", description=__doc__)
    # guard: internal, started by Guard (instructions on stdin).
    parser.add_argument("command", choices=["up", "status", "down", "fetch", "guard"])
    args = parser.parse_args(argv)
    try:
        if args.command == "guard":
            guard(iter(sys.stdin))
        elif args.command == "fetch":
            print(ensure_kafka_libs())
        elif args.command == "up":
            up()
            for name, line in status().items():
                print(f"{name:<11} {line}")
        elif args.command == "status":
            for name, line in status().items():
                print(f"{name:<11} {line}")
        else:
            down()
            print("platform stopped")
    except PlatformError as exc:
        print(f"motcua-local: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
