"""The metrics service's HTTP routes: the index as JSON (Prometheus reads /metrics)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from services.metrics.context import Metrics
from services.metrics.index import parse_period
from services.metrics.workflow import standings
from shared.calendar import LOCAL_TZ
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


class RankedOn(BaseModel):
    """The administrative structure a period is ranked on: the one in force on its last day."""

    id: str = Field(examples=["vn34"])
    name: str
    provinces: int = Field(description="how many provinces the structure has", examples=[34])


class IndexTable(BaseModel):
    scope: str
    period: str
    period_start: datetime
    period_end: datetime
    evaluated_at: datetime | None
    structure: RankedOn
    entries: list[IndexEntry]


@router.get("/index", response_model=IndexTable)
async def service_index(
    metrics: MetricsDep,
    scope: Literal["unit", "province"] = "province",
    period: Annotated[str, Query(max_length=10, examples=["2023-Q3", "2023-07", "2023"])] = "",
) -> IndexTable:
    """The index of every unit or province for a period (by event time), ranked. Provinces are
    those of the structure in force on the period's last day (63 until 30 June 2025, then 34),
    each unit's dossiers counted to the province that holds its territory then; units are
    listed by their code as received."""
    latest = await metrics.store.latest_event_at()
    label = period or f"{(latest or datetime.now(UTC)).astimezone(LOCAL_TZ).year}"
    try:
        chosen = parse_period(label)
    except ValueError as exc:
        raise Problem(422, "Invalid period", str(exc), kind="invalid-period") from exc
    # Judged at the period's end, or at the latest event for a period still running: event time,
    # never the wall clock, so a replayed log gives the same table.
    at = min(chosen.end, latest) if latest else chosen.end
    reference = metrics.reference
    on, scores = await standings(metrics, scope, chosen, at)
    if scope == "province":
        names = {code: p.short_name for code, p in on.provinces.items()}
    else:
        names = {s.code: u.name for s in scores if (u := reference.units.get(s.code))}
    return IndexTable(
        scope=scope,
        period=chosen.label,
        period_start=chosen.start,
        period_end=chosen.end,
        evaluated_at=at if latest else None,
        structure=RankedOn(id=on.structure.id, name=on.structure.name, provinces=len(on.provinces)),
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
            for s in scores
        ],
    )
