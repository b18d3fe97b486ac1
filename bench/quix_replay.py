"""The metrics service's aggregation written with Quix Streams, for the metrics replay's comparison.

What a team would write if it picked Quix Streams for stateful Kafka aggregation instead of the
service's batched consumer over PostgreSQL: a stateful step keyed by dossier (the record key)
keeps each dossier's facts and the ids of its events already counted, and turns each status event
into counter deltas, exactly as services/metrics/domain.py does; `group_by` re-keys the deltas by
unit (through Quix's repartition topic) and a second stateful step keeps the per-unit counters.
Both state stores are RocksDB, backed by changelog topics (Quix's defaults).

It runs in its own virtualenv, `.venv-quix` (made by `make bench` from bench/quix-requirements.txt:
quixstreams needs an older pydantic than the project pins), so it imports nothing of the project:

    .venv-quix/bin/python bench/quix_replay.py --bootstrap HOST:PORT --topic TOPIC --events N

It reads TOPIC from its first offset with a fresh consumer group, stops once N events were counted
and every delta they produced reached the unit counters, and prints one JSON line on stdout:
events, seconds (first event to last counter update), events_per_s, peak_rss_mib, and the totals
of the main counters over all units. `--counters-out FILE` also writes every non-zero counter as
JSON rows [name, unit, label, value] (the rows of the service's metrics.counters table).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

# quixstreams lives only in .venv-quix, not in the project's .venv where mypy runs.
from quixstreams import Application, State  # type: ignore[import-not-found,unused-ignore]

Facts = dict[str, Any]

# The contract's statuses (shared/contract.py): refused at reception 3, withdrawn 7, stopped 8,
# resolved 9, result returned 10 end a dossier's processing.
REFUSED_AT_RECEPTION = 3
END_STATUSES = frozenset({3, 7, 8, 9, 10})
STATUS_EVENT_TYPES = frozenset({"DossierStatusChanged", "DossierOverdue"})
# Upper bounds of the resolution-time histogram, in working days (services/metrics/domain.py).
RESOLUTION_BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0)
SEP = "|"  # a per-unit state key is "name|label"


def facts_after(old: Facts | None, event: dict[str, Any]) -> Facts:
    """The dossier's facts once `event` is known (domain.facts_after)."""
    p = event["payload"]
    occurred_at = event["occurred_at"]
    satisfied = p.get("satisfied")
    rated_now = satisfied is not None and (old is None or old["satisfied"] is None)
    return {
        "receiving_unit": event["receiving_unit"],
        "competent_unit": event["competent_unit"],
        "channel": p["channel"],
        "status": p["status"],
        "received_at": p["received_at"],
        "appointment_at": p["appointment_at"],
        "ended_at": p.get("ended_at"),
        "timeliness": p.get("timeliness"),
        "elapsed_working_days": p.get("elapsed_working_days"),
        "components_total": p.get("components_total", 0),
        "components_digitized": p.get("components_digitized", 0),
        "components_reused": p.get("components_reused", 0),
        "approved": p.get("approved"),
        "result_electronic": bool(p.get("result_electronic")),
        "digitized": p.get("digitized", False),
        # Overdue is sticky: once reported, a dossier stays overdue until it ends.
        "overdue": event["type"] == "DossierOverdue" or (old is not None and old["overdue"]),
        "satisfied": satisfied,
        "rated_at": occurred_at if rated_now else (old["rated_at"] if old else None),
        "last_event_at": (
            max(occurred_at, old["last_event_at"], key=datetime.fromisoformat)
            if old
            else occurred_at
        ),
    }


def accumulate(old: Facts | None, new: Facts) -> dict[str, dict[str, int]]:  # noqa: PLR0912
    """{unit: {"name|label": delta}} of the transition from `old` to `new` (domain.accumulate)."""
    out: dict[str, dict[str, int]] = {}

    def add(name: str, unit: str, label: str, n: int) -> None:
        counters = out.setdefault(unit, {})
        key = f"{name}{SEP}{label}"
        counters[key] = counters.get(key, 0) + n

    r, c = new["receiving_unit"], new["competent_unit"]
    if old is None:
        if new["status"] == REFUSED_AT_RECEPTION:
            add("refused_at_reception", r, "", 1)
            return out
        add("received", r, new["channel"], 1)
        if new["components_total"] and new["components_digitized"] == new["components_total"]:
            add("received_digitized", r, "", 1)
        if new["components_reused"]:
            add("received_reused", r, "", 1)
        add("open", c, "within", 1)
        was_open, was_overdue = True, False
        old_approved, old_electronic, old_digitized, old_satisfied = None, False, False, None
    else:
        if old["status"] == REFUSED_AT_RECEPTION:
            return out
        was_open, was_overdue = old["status"] not in END_STATUSES, old["overdue"]
        old_approved, old_electronic = old["approved"], old["result_electronic"]
        old_digitized, old_satisfied = old["digitized"], old["satisfied"]
    is_open = new["status"] not in END_STATUSES
    if was_open and is_open and new["overdue"] and not was_overdue:
        add("open", c, "within", -1)
        add("open", c, "overdue", 1)
    if was_open and not is_open:
        add("open", c, "overdue" if was_overdue else "within", -1)
        if new["timeliness"] is not None:
            add("completed", c, new["timeliness"], 1)
        days = new["elapsed_working_days"] or 0.0
        for le in RESOLUTION_BUCKETS:
            if days <= le:
                add("resolution_bucket", c, f"{le:g}", 1)
        add("resolution_bucket", c, "+Inf", 1)
        add("resolution_sum_millidays", c, "", round(days * 1000))
    if old_approved is None and new["approved"] is not None:
        add("resolved", c, "approved" if new["approved"] else "refused", 1)
    if new["result_electronic"] and not old_electronic:
        add("electronic_result", c, "", 1)
    if new["digitized"] and not old_digitized:
        add("digitized", c, "", 1)
    if old_satisfied is None and new["satisfied"] is not None:
        add("rated", c, "satisfied" if new["satisfied"] else "unsatisfied", 1)
    return out


class Replay:
    """The two stateful steps, and the bookkeeping that tells when the replay is done."""

    def __init__(self, expected: int, stop: Callable[[], None]) -> None:
        self.expected = expected
        self.stop = stop
        self.events = 0  # source events seen
        self.skipped = 0  # not a status event, or an event id already counted
        self.deltas_out = 0  # per-unit delta messages sent to the repartition topic
        self.deltas_in = 0  # ... and applied to the unit counters
        self.counters: dict[tuple[str, str], int] = {}  # (unit, "name|label") -> value in state
        self.started = 0.0
        self.finished = 0.0

    def dossier_step(self, event: dict[str, Any], state: State) -> list[dict[str, Any]]:
        """State keyed by dossier id: its facts and its counted event ids -> per-unit deltas."""
        if self.events == 0:
            self.started = time.perf_counter()
        self.events += 1
        out: list[dict[str, Any]] = []
        if event.get("type") in STATUS_EVENT_TYPES and event.get("schema_version") == 1:
            dossier = state.get("dossier")
            seen = dossier["event_ids"] if dossier else []
            if event["event_id"] in seen:
                self.skipped += 1  # a redelivered event counts once, as in the service
            else:
                old = dossier["facts"] if dossier else None
                new = facts_after(old, event)
                state.set("dossier", {"facts": new, "event_ids": [*seen, event["event_id"]]})
                for unit, deltas in accumulate(old, new).items():
                    nonzero = {k: n for k, n in deltas.items() if n}
                    if nonzero:
                        out.append({"unit": unit, "deltas": nonzero})
        else:
            self.skipped += 1
        self.deltas_out += len(out)
        self._maybe_done()
        return out

    def unit_step(self, message: dict[str, Any], state: State) -> dict[str, Any]:
        """State keyed by unit: its counters ("name|label" -> value), one state entry (a unit
        has a few dozen counters: one read and one write per message beat one per counter)."""
        counters = state.get("counters", {})
        for key, n in message["deltas"].items():
            counters[key] = counters.get(key, 0) + n
        state.set("counters", counters)
        return {"unit": message["unit"], "values": {k: counters[k] for k in message["deltas"]}}

    def observe(self, result: dict[str, Any]) -> None:
        """The sink: remembers the latest value of each counter, as read from the unit state."""
        unit = result["unit"]
        for key, value in result["values"].items():
            self.counters[unit, key] = value
        self.deltas_in += 1
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self.events >= self.expected and self.deltas_in >= self.deltas_out:
            self.finished = self.finished or time.perf_counter()
            self.stop()

    def totals(self) -> dict[str, int]:
        """Each counter summed over units and labels (labels kept for completed and open)."""
        out: dict[str, int] = {}
        for (_, key), value in sorted(self.counters.items()):
            name, label = key.split(SEP, 1)
            for total in (name, f"{name}:{label}") if name in ("completed", "open") else (name,):
                out[total] = out.get(total, 0) + value
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--topic", required=True, help="the status-events topic to aggregate")
    parser.add_argument("--events", type=int, required=True, help="events to process, then stop")
    parser.add_argument("--counters-out", help="write every non-zero counter here (JSON)")
    parser.add_argument(
        "--guarantee", choices=("exactly-once", "at-least-once"), default="exactly-once"
    )
    parser.add_argument("--commit-interval", type=float, default=5.0, help="seconds (Quix's 5)")
    parser.add_argument("--loglevel", default="WARNING", help="of Quix's logger (on stderr)")
    args = parser.parse_args()

    state_dir = tempfile.mkdtemp(prefix="quix-replay-")
    try:
        app = Application(
            broker_address=args.bootstrap,
            consumer_group=f"quix-replay-{uuid.uuid4().hex[:10]}",  # fresh: no offsets, no state
            auto_offset_reset="earliest",
            # Exactly-once (Kafka transactions over the output, the repartition and changelog
            # topics, and the consumed offsets): the counters must never count an event twice
            # across a crash or a rebalance, which is what the service guarantees with its
            # processed-event ids in PostgreSQL. At-least-once could double-count after a restart.
            processing_guarantee=args.guarantee,
            commit_interval=args.commit_interval,
            state_dir=state_dir,
            loglevel=args.loglevel,
        )
        replay = Replay(args.events, app.stop)
        topic = app.topic(args.topic, value_deserializer="json", key_deserializer="bytes")
        sdf = app.dataframe(topic)
        sdf = sdf.apply(replay.dossier_step, stateful=True, expand=True)
        sdf = sdf.group_by("unit")
        sdf = sdf.apply(replay.unit_step, stateful=True)
        sdf = sdf.update(replay.observe)
        app.run()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)

    if replay.events < args.events or replay.deltas_in < replay.deltas_out:
        sys.exit(f"quix replay stopped early: {replay.events}/{args.events} events")
    if args.counters_out:
        rows = []
        for (unit, key), value in sorted(replay.counters.items()):
            name, label = key.split(SEP, 1)
            if value:
                rows.append([name, unit, label, value])
        with open(args.counters_out, "w") as f:
            json.dump(rows, f)
    seconds = replay.finished - replay.started
    print(
        json.dumps(
            {
                "events": replay.events,
                "skipped": replay.skipped,
                "seconds": round(seconds, 3),
                "events_per_s": round(replay.events / seconds, 1),
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "guarantee": args.guarantee,
                "totals": replay.totals(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
