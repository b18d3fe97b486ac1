"""The `motcua` command: run a service, mint development tokens, push sample dossiers."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn
import uvloop
from pydantic import ValidationError

from shared.auth import mint
from shared.lifecycle import Shutdown
from shared.serving import server_config
from shared.settings import Environment, ServiceSettings, SettingsError

if TYPE_CHECKING:
    from tools.simulate.tokens import TokenSource

SERVICES = ("intake", "processing", "metrics")


class _Server(uvicorn.Server):
    """uvicorn, telling the app the moment it is asked to stop: readiness fails from then on,
    and the app's shutdown deadline runs from the signal, not from the end of HTTP draining."""

    def __init__(self, config: uvicorn.Config, shutdown: Shutdown | None) -> None:
        super().__init__(config)
        self._shutdown = shutdown

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._shutdown is not None:
            self._shutdown.begin()
        super().handle_exit(sig, frame)


def _stopped(_signum: int, _frame: FrameType | None) -> None:
    # uvicorn raises the signal it handled again once it has shut down, for the handler it
    # found; the default one would end a clean shutdown with "killed by SIGTERM" (143).
    raise SystemExit(0)


def _serve(name: str, port: int | None) -> int:
    # Imported here so that running one service never imports another.
    if name == "intake":
        from services.intake.app import create_app
        from services.intake.config import IntakeSettings

        settings: ServiceSettings = IntakeSettings()
        app = create_app(IntakeSettings())
    elif name == "processing":
        from services.processing.app import create_app as create_processing
        from services.processing.config import ProcessingSettings

        settings = ProcessingSettings()
        app = create_processing(ProcessingSettings())
    else:
        from services.metrics.app import create_app as create_metrics
        from services.metrics.config import MetricsSettings

        settings = MetricsSettings()
        app = create_metrics(MetricsSettings())
    _tune_gc()
    # Address, slow-client deadlines, header and connection caps, trusted proxies, and half of
    # the shutdown time for requests in flight (shared/serving.py).
    config = server_config(app, settings, port=port)
    shutdown = getattr(app.state, "shutdown", None)
    server = _Server(config, shutdown if isinstance(shutdown, Shutdown) else None)
    signal.signal(signal.SIGTERM, _stopped)
    server.run()
    # As uvicorn.run: a lifespan that failed to start is an error (3).
    return 0 if server.started else 3


def _development_key(command: str) -> str | None:
    """The key that signs development tokens; None (said on stderr) with production settings,
    where tokens come from the identity provider and a minted one would pass as an officer's."""
    settings = ServiceSettings()
    if settings.environment is Environment.PRODUCTION:
        print(
            f"motcua {command}: refused with production settings (MOTCUA_ENVIRONMENT=production):"
            " tokens are minted for development and tests only",
            file=sys.stderr,
        )
        return None
    return settings.token_key_list[0]


def _token(unit: str, role: str, subject: str) -> int:
    key = _development_key("token")
    if key is None:
        return 2
    if role not in ("counter", "officer"):
        print("role must be counter or officer", file=sys.stderr)
        return 2
    print(
        mint(
            key,
            unit=unit,
            role="counter" if role == "counter" else "officer",
            subject=subject,
        )
    )
    return 0


async def _submit_samples(url: str, count: int, seed: int) -> int:
    import httpx

    from tools.samples import sample_submission

    key = _development_key("submit-samples")
    if key is None:
        return 2
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    failures = 0
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for i in range(count):
            unit, body = sample_submission(rng)
            token = mint(key, unit=unit, role="counter", subject=f"demo-counter-{i}")
            response = await client.post(
                "/v1/dossiers", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            if response.status_code != 201:
                failures += 1
                print(f"refused: {response.status_code} {response.text}", file=sys.stderr)
                continue
            receipt = response.json()
            print(
                json.dumps(
                    {k: receipt[k] for k in ("dossier_code", "appointment_at")}, ensure_ascii=False
                )
            )
    return 1 if failures else 0


def _rebuild_metrics() -> int:
    from services.metrics.config import MetricsSettings
    from services.metrics.rebuild import RebuildRefused, rebuild

    try:
        _tune_gc()
        # uvloop, as under uvicorn: the replay is loop-bound between database round trips.
        report = uvloop.run(rebuild(MetricsSettings()))
    except RebuildRefused as exc:
        print(f"motcua metrics rebuild: {exc}", file=sys.stderr)
        return 1
    print(f"rebuilt from {report.events} status events in {report.partitions} partitions")
    return 0


def _report(url: str, scope: str, period: str) -> int:
    import httpx

    params = {"scope": scope, **({"period": period} if period else {})}
    response = httpx.get(f"{url}/v1/index", params=params, timeout=30)
    if response.status_code != 200:
        print(f"motcua report: {response.status_code} {response.text}", file=sys.stderr)
        return 1
    print("\n".join(league_lines(response.json())))
    return 0


def league_lines(table: dict[str, Any]) -> list[str]:
    """The league table as `motcua report` prints it. Provinces rank among the provinces of the
    map in force at the period's end ("25/63" in 2023, "n/34" since July 2025), named in the
    header; units rank among the units in the table."""
    structure = table.get("structure")
    entries = table["entries"]
    header = f"Chỉ số phục vụ (766) — {table['scope']}, kỳ {table['period']}"
    among = len(entries)
    if isinstance(structure, dict):
        header += f" — {structure['name']}"
        if table["scope"] == "province":
            among = int(structure["provinces"])
    return [header] + [
        f"{entry['name']:<40} {entry['total']:6.2f} {entry['grade']:<11} {entry['rank']}/{among}"
        for entry in entries
    ]


def _import(path: str, wait: bool) -> int:
    from pathlib import Path

    from services.intake.config import IntakeSettings
    from shared.progress import Progress
    from tools.importer import count_lines, drain_outbox, run_import

    source = Path(path)
    if not source.is_file():
        print(f"motcua import: {path}: no such file", file=sys.stderr)
        return 2
    settings = IntakeSettings()
    progress = Progress(count_lines(source), "lines checked")
    summary = asyncio.run(run_import(source, settings, progress.advance))
    progress.finish()
    print(
        f"accepted {summary.accepted}, rejected {summary.rejected}, "
        f"already imported {summary.already_imported}"
    )
    if summary.rejected:
        print(f"rejected lines with their reasons: {summary.rejected_file}")
        for reason, count in sorted(summary.reasons.items(), key=lambda kv: -kv[1])[:10]:
            print(f"  {count:>6}  {reason}")
    if wait and summary.accepted:
        publishing = Progress(None, "events published")
        asyncio.run(drain_outbox(settings, publishing))
        publishing.finish()
    return 0 if summary.accepted or not summary.rejected else 1


def _simulation_tokens(keycloak: str | None) -> TokenSource | None:
    """Clerks signed in at the demo's Keycloak, or development tokens; None (said) if neither."""
    from tools.simulate.tokens import DevelopmentTokens, KeycloakTokens

    if keycloak:
        password = os.environ.get("MOTCUA_KEYCLOAK_ADMIN_PASSWORD", "")
        if not password:
            print(
                "motcua simulate: --keycloak needs MOTCUA_KEYCLOAK_ADMIN_PASSWORD (the realm's"
                " administrator creates the simulated clerks); see .local/keycloak.env",
                file=sys.stderr,
            )
            return None
        clerks = os.environ.get("MOTCUA_KEYCLOAK_CLERK_PASSWORD") or None
        return KeycloakTokens(keycloak, password, password=clerks)
    key = _development_key("simulate")
    return None if key is None else DevelopmentTokens(key)


def _simulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from shared.admin_map import local_day
    from shared.progress import Progress
    from tools.simulate import Simulation, expected_arrivals, now, write_history

    today = local_day(now())
    if args.as_of is not None and (refused := _as_of_refused(args.as_of, today, args.write_import)):
        print(f"motcua simulate: {refused}", file=sys.stderr)
        return 2
    if args.write_import:
        start = args.as_of or today - timedelta(days=args.days)
        lines = write_history(
            Path(args.write_import),
            days=args.days,
            per_day=args.per_day,
            seed=args.seed,
            start=start,
            until=now(),
        )
        print(f"wrote {lines} dossiers over {args.days} days from {start} to {args.write_import}")
        return 0
    tokens = _simulation_tokens(args.keycloak)
    if tokens is None:
        return 2
    simulation = Simulation(
        args.intake,
        args.processing,
        tokens=tokens,
        seed=args.seed,
        units=args.units,
        pace=args.pace,
    )
    structure = simulation.network.structure
    provinces = len({u.province for u in simulation.units})
    print(
        f"today's map {structure.id} ({structure.name}): {len(simulation.units)} receiving units"
        f" in {provinces} provinces"
    )
    progress = Progress(round(expected_arrivals(args.rate, args.duration)), "dossiers submitted")

    async def go() -> int:
        try:
            outcome = await simulation.run(args.rate, args.duration, progress)
        finally:
            await simulation.close()
        progress.finish()
        print(outcome.summary())
        return 1 if outcome.errors else 0

    try:
        return asyncio.run(go())
    except KeyboardInterrupt:
        progress.finish()
        print(simulation.outcome.summary() + "\n(interrupted)")
        return 130


def _as_of_refused(as_of: date, today: date, history: bool) -> str | None:
    """Why `--as-of` cannot be used (one line), or None. History starts on that day, so it must
    be past; a live run receives now, so only the map in force today will do."""
    from shared.reference import REFERENCE_DIR, load_reference

    if history and as_of >= today:
        return f"--as-of {as_of} is not in the past (today is {today})"
    reference = load_reference(REFERENCE_DIR)
    then, current = reference.structure_at(as_of), reference.structure_at(today)
    if history or then.id == current.id:
        return None
    return (
        f"--as-of {as_of} is on the map {then.id} ({then.name}), not in force today "
        f"({current.id} since {current.validity.valid_from}): a live run receives at today's "
        "units; use --as-of with --write-import"
    )


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text}") from None


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _tune_gc() -> None:
    """Fewer, cheaper garbage collections for the long-running, allocation-heavy commands.

    Every decoded event allocates a few dozen objects, so the default thresholds ran a young
    collection every few events and a full one often, each walking the hundreds of thousands of
    objects that importing FastAPI and pydantic leaves behind. Those are frozen (never collected,
    they live as long as the process) and the young generation is made larger.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="motcua", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run one service (settings from MOTCUA_* variables)")
    serve.add_argument("service", choices=SERVICES)
    serve.add_argument("--port", type=int)
    token = sub.add_parser("token", help="mint a development token for a counter or an officer")
    token.add_argument("--unit", required=True)
    token.add_argument("--role", default="counter", choices=["counter", "officer"])
    token.add_argument("--subject", default="dev")
    samples = sub.add_parser("submit-samples", help="submit realistic sample dossiers over HTTP")
    samples.add_argument("--url", default="http://127.0.0.1:8000")
    samples.add_argument("--count", type=int, default=5)
    samples.add_argument("--seed", type=int, default=1)
    metrics = sub.add_parser("metrics", help="metrics maintenance")
    metrics.add_argument(
        "action",
        choices=["rebuild"],
        help="rebuild: recount every aggregate from the status log (service stopped)",
    )
    report = sub.add_parser("report", help="print the service-quality index league table")
    report.add_argument("--url", default="http://127.0.0.1:8002", help="the metrics service")
    report.add_argument("--scope", default="province", choices=["province", "unit"])
    report.add_argument(
        "--period", default="", help="2023, 2023-Q3 or 2023-07 (default: latest year)"
    )
    importing = sub.add_parser("import", help="import historical dossiers from a JSONL file")
    importing.add_argument("file")
    importing.add_argument(
        "--no-wait", action="store_true", help="do not wait for the events to be published to Kafka"
    )
    sim = sub.add_parser("simulate", help="counters and officers at work over the HTTP APIs")
    sim.add_argument("--intake", default="http://127.0.0.1:8000")
    sim.add_argument("--processing", default="http://127.0.0.1:8001")
    sim.add_argument(
        "--keycloak",
        default=os.environ.get("MOTCUA_KEYCLOAK_URL") or None,
        help="sign the clerks in at this Keycloak (deploy/local/keycloak.py; its administrator's"
        " password in MOTCUA_KEYCLOAK_ADMIN_PASSWORD) instead of minting development tokens",
    )
    sim.add_argument(
        "--rate",
        type=_positive,
        default=10.0,
        help="mean dossiers per second (Poisson arrivals over a compressed working day)",
    )
    sim.add_argument("--duration", type=_positive, default=30.0, help="seconds of submissions")
    sim.add_argument(
        "--units",
        type=_at_least_one,
        default=60,
        help="how many units receive dossiers (spread across provinces, drawn from the seed)",
    )
    sim.add_argument("--seed", type=int, default=1, help="the same seed, the same traffic")
    sim.add_argument(
        "--pace",
        type=float,
        default=1.0,
        help="seconds between an officer's steps on one dossier (compressed time)",
    )
    sim.add_argument(
        "--write-import",
        metavar="FILE",
        help="write the traffic as a historical import file instead",
    )
    sim.add_argument(
        "--as-of",
        type=_day,
        metavar="YYYY-MM-DD",
        help="with --write-import: the history starts that day, on the map in force then "
        "(2024-05-01: the 63 provinces); a live run accepts only a day of today's map",
    )
    sim.add_argument(
        "--days", type=_at_least_one, default=30, help="with --write-import: days of history"
    )
    sim.add_argument(
        "--per-day", type=int, default=2000, help="with --write-import: dossiers per working day"
    )
    args = parser.parse_args(argv)
    commands: dict[str, Callable[[], int]] = {
        "simulate": lambda: _simulate(args),
        "import": lambda: _import(args.file, not args.no_wait),
        "metrics": _rebuild_metrics,
        "report": lambda: _report(args.url, args.scope, args.period),
        "serve": lambda: _serve(args.service, args.port),
        "token": lambda: _token(args.unit, args.role, args.subject),
        "submit-samples": lambda: asyncio.run(_submit_samples(args.url, args.count, args.seed)),
    }
    try:
        return commands[args.command]()
    except (ValidationError, SettingsError) as exc:
        # The messages name the variables and the rules, never a value (shared/settings.py).
        print(f"motcua {args.command}: invalid settings: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
