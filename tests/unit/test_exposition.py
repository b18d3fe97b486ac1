"""The metrics service's Prometheus page: counters, open gauge, histogram, index and units."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.metrics import domain as d
from services.metrics.domain import CounterKey
from services.metrics.exposition import AggregateCollector, IndexExposition, UnitInfo
from shared.reference import REFERENCE_DIR, ReferenceData, load_reference


def samples(text: bytes) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def render(snapshot: dict[CounterKey, int]) -> dict[str, float]:
    collector = AggregateCollector()
    collector.snapshot = snapshot
    registry = CollectorRegistry()
    registry.register(collector)
    return samples(generate_latest(registry))


def test_the_snapshot_is_what_the_page_says() -> None:
    page = render(
        {
            CounterKey(d.RECEIVED, "T01.X00004", "online"): 3,
            CounterKey(d.REFUSED_AT_RECEPTION, "T01.X00004", ""): 1,
            CounterKey(d.COMPLETED, "T01.X00008", "late"): 2,
            CounterKey(d.RATED, "T01.X00008", "satisfied"): 1,
            CounterKey(d.OPEN, "T01.X00008", "overdue"): 4,
        }
    )
    assert page['motcua_dossiers_received_total{channel="online",unit="T01.X00004"}'] == 3
    assert page['motcua_dossiers_refused_at_reception_total{unit="T01.X00004"}'] == 1
    assert page['motcua_dossiers_completed_total{timeliness="late",unit="T01.X00008"}'] == 2
    assert page['motcua_dossiers_rated_total{satisfied="satisfied",unit="T01.X00008"}'] == 1
    assert page['motcua_dossiers_open{deadline="overdue",unit="T01.X00008"}'] == 4


def test_a_new_snapshot_replaces_the_old_one() -> None:
    collector = AggregateCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    collector.snapshot = {CounterKey(d.RECEIVED, "T01", "online"): 1}
    assert (
        samples(generate_latest(registry))[
            'motcua_dossiers_received_total{channel="online",unit="T01"}'
        ]
        == 1
    )
    collector.snapshot = {CounterKey(d.RECEIVED, "T01", "online"): 5}
    assert (
        samples(generate_latest(registry))[
            'motcua_dossiers_received_total{channel="online",unit="T01"}'
        ]
        == 5
    )


def test_the_resolution_histogram_is_cumulative_with_every_bucket() -> None:
    # Two dossiers resolved in 1.5 and 4 working days (the fold's cumulative buckets).
    counts = {"2": 1, "3": 1, "5": 2}
    counts |= {f"{le:g}": 2 for le in d.RESOLUTION_BUCKETS if le > 5} | {"+Inf": 2}
    page = render(
        {CounterKey(d.RESOLUTION_BUCKET, "T01.X00008", le): n for le, n in counts.items()}
        | {CounterKey(d.RESOLUTION_SUM, "T01.X00008", ""): 5500}
    )
    name = "motcua_dossier_resolution_working_days"
    assert page[f'{name}_bucket{{le="0.5",unit="T01.X00008"}}'] == 0
    assert page[f'{name}_bucket{{le="1",unit="T01.X00008"}}'] == 0
    assert page[f'{name}_bucket{{le="2",unit="T01.X00008"}}'] == 1
    assert page[f'{name}_bucket{{le="5",unit="T01.X00008"}}'] == 2
    assert page[f'{name}_bucket{{le="+Inf",unit="T01.X00008"}}'] == 2
    assert page[f'{name}_count{{unit="T01.X00008"}}'] == 2
    assert page[f'{name}_sum{{unit="T01.X00008"}}'] == 5.5  # thousandths of a day in the store


def test_an_empty_snapshot_still_declares_the_families() -> None:
    collector = AggregateCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    assert "# TYPE motcua_dossiers_received_total counter" in text
    assert "# TYPE motcua_dossiers_open gauge" in text
    assert "# TYPE motcua_dossier_resolution_working_days histogram" in text


def test_the_index_is_rendered_once_per_update() -> None:
    index = IndexExposition()
    assert index.text == b""
    index.update([("unit", "T01.X00008", "total", 87.5), ("province", "T01", "1", 9.0)])
    page = samples(index.text)
    assert page['motcua_service_index_score{code="T01.X00008",group="total",scope="unit"}'] == 87.5
    assert page['motcua_service_index_score{code="T01",group="1",scope="province"}'] == 9.0
    index.update([])
    assert "motcua_service_index_score{" not in index.text.decode()


@pytest.fixture(scope="module")
def reference() -> ReferenceData:
    return load_reference(REFERENCE_DIR)


def test_every_unit_of_both_maps_is_joined_to_todays_province(reference: ReferenceData) -> None:
    info = UnitInfo(reference, date(2026, 12, 2))
    page = samples(info.text)
    assert len(page) == len(reference.units)  # the old map's units too, each code once
    # Hà Giang's units (old map) join onto Tuyên Quang, which took Hà Giang over.
    assert (
        page[
            'motcua_unit_info{level="district",name="Bộ phận Một cửa thành phố Hà Giang, '
            'Hà Giang",province="08",province_name="Tuyên Quang",structure="vn63",'
            'unit="T02.H024"}'
        ]
        == 1
    )
    assert (
        page[
            'motcua_unit_info{level="province",name="Trung tâm Phục vụ hành chính công tỉnh '
            'Hà Giang",province="08",province_name="Tuyên Quang",structure="vn63",unit="T02"}'
        ]
        == 1
    )
    # A code that kept its province across maps: one series, today's version and name.
    assert (
        page[
            'motcua_unit_info{level="province",name="Trung tâm Phục vụ hành chính công tỉnh '
            'Bắc Ninh",province="24",province_name="Bắc Ninh",structure="vn34",unit="T24"}'
        ]
        == 1
    )
    assert (
        page[
            'motcua_unit_info{level="commune",name="Trung tâm Phục vụ hành chính công phường '
            'Ba Đình, Hà Nội",province="01",province_name="Hà Nội",structure="vn34",'
            'unit="T01.X00004"}'
        ]
        == 1
    )
    # Old and new units add up onto the 34 provinces, nothing else.
    provinces = {(labels["province"], labels["province_name"]) for labels in info_labels(info.text)}
    assert provinces == {(p.code, p.short_name) for p in reference.map.provinces("vn34")}


def test_the_info_is_rendered_again_only_for_new_data_or_a_new_day(
    reference: ReferenceData,
) -> None:
    info = UnitInfo(reference, date(2025, 6, 30))
    # On the old map's last day, Hà Giang's units are still Hà Giang's.
    assert {"02"} == {
        labels["province"] for labels in info_labels(info.text) if labels["unit"].startswith("T02.")
    }
    before = info.text
    info.follow(reference, date(2025, 6, 30))
    assert info.text is before
    # A reload (a new data version) renders again, the same day.
    info.follow(replace(reference), date(2025, 6, 30))
    assert info.text is not before
    info.follow(reference, date(2025, 7, 1))
    assert {"08"} == {
        labels["province"] for labels in info_labels(info.text) if labels["unit"].startswith("T02.")
    }


LABEL = re.compile(r'(\w+)="([^"]*)"')


def info_labels(text: bytes) -> list[dict[str, str]]:
    """The label sets of the info series (a plain reading: 14,000 lines through the client's
    parser take seconds; the full parse is `samples` above)."""
    return [
        dict(LABEL.findall(line))
        for line in text.decode().splitlines()
        if line.startswith("motcua_unit_info{")
    ]
