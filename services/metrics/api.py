"""The metrics service's HTTP routes: the index as JSON (Prometheus reads /metrics)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from services.metrics.context import Metrics
from services.metrics.index import league, parse_period
from shared.problems import Problem

router = APIRouter(prefix="/v1", tags=["index"])


async def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


MetricsDep = Annotated[Metrics, Depends(_metrics)]


class IndexEntry(BaseModel):
    code: str
    name: str
    total: float
    grade: str
    rank: int
    groups: dict[str, float]
    indicators: dict[str, float]


class IndexTable(BaseModel):
    scope: str
    period: str
    period_start: datetime
    period_end: datetime
    evaluated_at: datetime | None
    entries: list[IndexEntry]


@router.get("/index", response_model=IndexTable)
async def service_index(
    metrics: MetricsDep,
    scope: Literal["unit", "province"] = "province",
    period: Annotated[str, Query(max_length=10, examples=["2023-Q3", "2023-07", "2023"])] = "",
) -> IndexTable:
    """The index of every unit or province for a period (by event time), ranked."""
    latest = await metrics.store.latest_event_at()
    label = period or f"{(latest or datetime.now()).year}"
    try:
        chosen = parse_period(label)
    except ValueError as exc:
        raise Problem(422, "Invalid period", str(exc), kind="invalid-period") from exc
    # Judged at the period's end, or at the latest event for a period still running: event time,
    # never the wall clock, so a replayed log gives the same table.
    at = min(chosen.end, latest) if latest else chosen.end
    populations = await metrics.store.populations(scope, chosen.start, chosen.end, at)
    names = metrics.names(scope)
    return IndexTable(
        scope=scope,
        period=chosen.label,
        period_start=chosen.start,
        period_end=chosen.end,
        evaluated_at=at if latest else None,
        entries=[
            IndexEntry(
                code=s.code,
                name=names.get(s.code, s.code),
                total=s.total,
                grade=s.grade,
                rank=s.rank,
                groups=s.groups,
                indicators=s.indicators,
            )
            for s in league(populations, metrics.index_config)
        ],
    )
