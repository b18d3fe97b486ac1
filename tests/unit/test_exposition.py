"""The metrics service's Prometheus page: counters, open gauge, histogram, index and units."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.metrics import domain as d
from services.metrics.domain import CounterKey
from services.metrics.exposition import AggregateCollector, IndexExposition, UnitInfo
from shared.reference import Province, ReferenceData, Unit


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
            CounterKey(d.RECEIVED, "T001.H01.X01", "online"): 3,
            CounterKey(d.REFUSED_AT_RECEPTION, "T001.H01.X01", ""): 1,
            CounterKey(d.COMPLETED, "T001.H01", "late"): 2,
            CounterKey(d.RATED, "T001.H01", "satisfied"): 1,
            CounterKey(d.OPEN, "T001.H01", "overdue"): 4,
        }
    )
    assert page['motcua_dossiers_received_total{channel="online",unit="T001.H01.X01"}'] == 3
    assert page['motcua_dossiers_refused_at_reception_total{unit="T001.H01.X01"}'] == 1
    assert page['motcua_dossiers_completed_total{timeliness="late",unit="T001.H01"}'] == 2
    assert page['motcua_dossiers_rated_total{satisfied="satisfied",unit="T001.H01"}'] == 1
    assert page['motcua_dossiers_open{deadline="overdue",unit="T001.H01"}'] == 4


def test_a_new_snapshot_replaces_the_old_one() -> None:
    collector = AggregateCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    collector.snapshot = {CounterKey(d.RECEIVED, "T001", "online"): 1}
    assert (
        samples(generate_latest(registry))[
            'motcua_dossiers_received_total{channel="online",unit="T001"}'
        ]
        == 1
    )
    collector.snapshot = {CounterKey(d.RECEIVED, "T001", "online"): 5}
    assert (
        samples(generate_latest(registry))[
            'motcua_dossiers_received_total{channel="online",unit="T001"}'
        ]
        == 5
    )


def test_the_resolution_histogram_is_cumulative_with_every_bucket() -> None:
    # Two dossiers resolved in 1.5 and 4 working days (the fold's cumulative buckets).
    counts = {"2": 1, "3": 1, "5": 2}
    counts |= {f"{le:g}": 2 for le in d.RESOLUTION_BUCKETS if le > 5} | {"+Inf": 2}
    page = render(
        {CounterKey(d.RESOLUTION_BUCKET, "T001.H01", le): n for le, n in counts.items()}
        | {CounterKey(d.RESOLUTION_SUM, "T001.H01", ""): 5500}
    )
    name = "motcua_dossier_resolution_working_days"
    assert page[f'{name}_bucket{{le="0.5",unit="T001.H01"}}'] == 0
    assert page[f'{name}_bucket{{le="1",unit="T001.H01"}}'] == 0
    assert page[f'{name}_bucket{{le="2",unit="T001.H01"}}'] == 1
    assert page[f'{name}_bucket{{le="5",unit="T001.H01"}}'] == 2
    assert page[f'{name}_bucket{{le="+Inf",unit="T001.H01"}}'] == 2
    assert page[f'{name}_count{{unit="T001.H01"}}'] == 2
    assert page[f'{name}_sum{{unit="T001.H01"}}'] == 5.5  # thousandths of a day in the store


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
    index.update([("unit", "T001.H01", "total", 87.5), ("province", "T001", "1", 9.0)])
    page = samples(index.text)
    assert page['motcua_service_index_score{code="T001.H01",group="total",scope="unit"}'] == 87.5
    assert page['motcua_service_index_score{code="T001",group="1",scope="province"}'] == 9.0
    index.update([])
    assert "motcua_service_index_score{" not in index.text.decode()


def test_each_unit_of_the_reference_data_has_its_info_series() -> None:
    reference = ReferenceData(
        version="test",
        units={
            "T001.H01": Unit("T001.H01", "Huyện Một", "district", "T001", "T001"),
            "T009.H01": Unit("T009.H01", "Huyện Chín", "district", "T009", "T009"),
        },
        procedures={},
        provinces={"T001": Province("T001", "Tỉnh Một")},
    )
    page = samples(UnitInfo(reference).text)
    assert (
        page[
            'motcua_unit_info{level="district",name="Huyện Một",province="T001",'
            'province_name="Tỉnh Một",unit="T001.H01"}'
        ]
        == 1
    )
    # A province missing from the reference data has an empty name, not a missing series.
    assert (
        page[
            'motcua_unit_info{level="district",name="Huyện Chín",province="T009",'
            'province_name="",unit="T009.H01"}'
        ]
        == 1
    )
