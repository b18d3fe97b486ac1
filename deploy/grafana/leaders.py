"""The leaders' overview: throughput, timeliness, backlog, digital rates and the index by province.

Every figure follows docs/metrics.md: the metrics service's totals are deduplicated across replicas
with `max without (instance, pod)` and only then summed over units. Filtering by province goes
through `motcua_unit_info` (unit → the province in force today that holds its territory), so the
counters need no province label and the units of the 63-province map, which keep their codes in
the counters, add up onto today's 34 provinces.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash

from deploy.grafana.common import (
    datasource_variable,
    dedup,
    query_variable,
    ranking_panel,
    stat_panel,
    table_panel,
    table_target,
    target,
    timeseries_panel,
)

UID = "motcua-leaders"
UNIT = 'unit=~"$unit"'
# 1 for every unit of the chosen provinces and units: multiplying by it keeps only those units.
SCOPE = 'max by (unit) (motcua_unit_info{province=~"$province", unit=~"$unit"})'
PROVINCE_NAMES = 'max by (province, province_name) (motcua_unit_info{province=~"$province"})'
UNIT_NAMES = (
    "max by (unit, name, structure, province_name) "
    '(motcua_unit_info{province=~"$province", unit=~"$unit"})'
)
# The units that have counted dossiers (of the ~14,000 of both maps in motcua_unit_info), with
# their names: what the unit picker offers.
UNITS_WITH_DOSSIERS = (
    'max by (unit, name) (motcua_unit_info{province=~"$province"}) '
    "and on (unit) group by (unit) "
    '({__name__=~"motcua_dossiers_(received|completed)_total"})'
)
ON_TIME = 'timeliness=~"early|on_time"'
QUANTILES = (("0.5", "median"), ("0.9", "90th percentile"), ("0.99", "99th percentile"))


def selector(metric: str, matchers: str = "") -> str:
    return f"{metric}{{{UNIT}{', ' + matchers if matchers else ''}}}"


def scoped(expr: str) -> str:
    return f"{expr} * on (unit) group_left () {SCOPE}"


def total(metric: str, matchers: str = "") -> str:
    """All-time total over the chosen units (deduplicated per unit first)."""
    return f"sum({scoped(dedup(selector(metric, matchers)))})"


def counted(metric: str, window: str, by: str = "", matchers: str = "") -> str:
    """How much the chosen units' totals grew over the last `window`, exactly.

    The metrics service's totals are the database's and never reset, so the difference of two
    totals is exact. increase() would extrapolate to fractions and miss each series' first
    dossier (a series appears with its first count); a total absent `window` ago counts from 0.
    """
    grouping = f" by ({by})" if by else ""
    now = dedup(selector(metric, matchers))
    before = dedup(f"{selector(metric, matchers)} offset {window}")
    return f"sum{grouping} ({scoped(f'({now} - ({before} or 0 * {now}))')})"


def ratio(numerator: str, denominator: str) -> str:
    return f"{numerator}\n  / {denominator}"


def resolution_quantile(q: str, window: str) -> str:
    buckets = counted("motcua_dossier_resolution_working_days_bucket", window, by="le")
    return f"histogram_quantile({q}, {buckets})"


def province_index() -> str:
    """The index total per province, with the province's name (the gauge knows only the code)."""
    score = dedup('motcua_service_index_score{scope="province", group="total"}')
    return (
        "max by (province, province_name) (\n"
        f'  label_replace({score}, "province", "$1", "code", "(.+)")\n'
        f"  * on (province) group_left (province_name) {PROVINCE_NAMES}\n)"
    )


def named(recorded: str, names: str, key: str, extra: str) -> str:
    """A recording rule's series with the names of its units or provinces, filtered by them."""
    return (
        f"max by ({key}, {extra}) (\n  {recorded}\n  * on ({key}) group_left ({extra}) {names}\n)"
    )


def throughput(board: dash.Dashboard) -> dash.Dashboard:
    received = "motcua_dossiers_received_total"
    completed = "motcua_dossiers_completed_total"
    return (
        board.with_row(dash.Row("Throughput"))
        .with_panel(
            stat_panel(
                "Received in the time range",
                "Dossiers received at the counters of the chosen units in the dashboard's range.",
                "short",
                target(counted(received, "$__range"), "received", instant=True),
            )
        )
        .with_panel(
            stat_panel(
                "Completed in the time range",
                "Dossiers whose processing ended (resolved, stopped or withdrawn) in the range.",
                "short",
                target(counted(completed, "$__range"), "completed", instant=True),
            )
        )
        .with_panel(
            stat_panel(
                "Open dossiers",
                "Dossiers received and not ended, at their competent unit.",
                "short",
                target(total("motcua_dossiers_open"), "open"),
            )
        )
        .with_panel(
            stat_panel(
                "Overdue dossiers",
                "Open dossiers past their appointment (or asked for a supplement twice).",
                "short",
                target(total("motcua_dossiers_open", 'deadline="overdue"'), "overdue"),
            )
        )
        .with_panel(
            timeseries_panel(
                "Received per day, by channel",
                "Each bar counts the dossiers received in the 24 hours before it.",
                "short",
                target(counted(received, "1d", by="channel"), "{{channel}}"),
                bars=True,
                stacked=True,
                interval="1d",
            )
        )
        .with_panel(
            timeseries_panel(
                "Completed per day, by timeliness",
                "Each bar counts the dossiers whose processing ended in the 24 hours before it, "
                "early, on time or late by the rules of DOMAIN.md.",
                "short",
                target(counted(completed, "1d", by="timeliness"), "{{timeliness}}"),
                bars=True,
                stacked=True,
                interval="1d",
            )
        )
    )


def timeliness(board: dash.Dashboard) -> dash.Dashboard:
    completed = "motcua_dossiers_completed_total"
    received = "motcua_dossiers_received_total"
    return (
        board.with_row(dash.Row("Timeliness and digital government"))
        .with_panel(
            stat_panel(
                "On-time rate",
                "Completed dossiers that ended early or on time, of all completed (all time; "
                "docs/metrics.md's formula, checked against the database by the tests).",
                "percentunit",
                target(ratio(total(completed, ON_TIME), total(completed)), "on time"),
            )
        )
        .with_panel(
            stat_panel(
                "Digitization rate",
                "Digitized dossiers (components digitized and an electronic result) of resolved "
                "ones (indicator 4.2, all time).",
                "percentunit",
                target(
                    ratio(
                        total("motcua_dossiers_digitized_total"),
                        total("motcua_dossiers_resolved_total"),
                    ),
                    "digitized",
                ),
            )
        )
        .with_panel(
            stat_panel(
                "Online submission rate",
                "Dossiers submitted online of all received (indicator 3.3, all time).",
                "percentunit",
                target(ratio(total(received, 'channel="online"'), total(received)), "online"),
            )
        )
        .with_panel(
            stat_panel(
                "Resolution time in the time range (working days)",
                "Working days from reception to the end of processing (supplementation waits "
                "excluded) of the dossiers completed in the range.",
                "none",
                *(
                    target(resolution_quantile(q, "$__range"), name, ref=ref, instant=True)
                    for (q, name), ref in zip(QUANTILES, "ABC", strict=True)
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Open and overdue backlog",
                "Open dossiers of the chosen units, within their deadline and overdue.",
                "short",
                target(
                    f"sum by (deadline) ({scoped(dedup(selector('motcua_dossiers_open')))})",
                    "{{deadline}}",
                ),
                stacked=True,
            )
        )
        .with_panel(
            timeseries_panel(
                "Resolution time (working days), by day",
                "Quantiles of the working days taken by the dossiers completed in the 24 hours "
                "before each point.",
                "none",
                *(
                    target(resolution_quantile(q, "1d"), name, ref=ref)
                    for (q, name), ref in zip(QUANTILES, "ABC", strict=True)
                ),
                interval="1d",
            )
        )
    )


def by_province(board: dash.Dashboard) -> dash.Dashboard:
    index = province_index()
    rates = (
        ("unit:motcua_on_time_rate:ratio", "province:motcua_on_time_rate:ratio", "On-time rate"),
        (
            "unit:motcua_digitization_rate:ratio",
            "province:motcua_digitization_rate:ratio",
            "Digitization rate",
        ),
        ("unit:motcua_online_rate:ratio", "province:motcua_online_rate:ratio", "Online rate"),
    )
    return (
        board.with_row(dash.Row("Provinces and units"))
        .with_panel(
            table_panel(
                "Service index by province",
                "The real-time index (Decision 766 style, year to date of the latest event) "
                "per province, in points out of 100.",
                table_target(index),
                rename={
                    "province": "Code",
                    "province_name": "Province",
                    "Value": "Index (points)",
                },
                sort_by="Index (points)",
            )
        )
        .with_panel(
            ranking_panel(
                "Ranking by index",
                "Provinces from the highest index to the lowest.",
                target(f"sort_desc({index})", "{{province_name}}", instant=True),
            )
        )
        .with_panel(
            table_panel(
                "Rates by province",
                "All-time rates per province (recording rules of deploy/prometheus/rules.yml).",
                *(
                    table_target(
                        named(
                            f'{recorded}{{province=~"$province"}}',
                            PROVINCE_NAMES,
                            "province",
                            "province_name",
                        ),
                        ref,
                    )
                    for (_, recorded, _), ref in zip(rates, "ABC", strict=True)
                ),
                rename={
                    "province": "Code",
                    "province_name": "Province",
                    **{
                        f"Value #{ref}": title
                        for (*_, title), ref in zip(rates, "ABC", strict=True)
                    },
                },
                sort_by="On-time rate",
            )
        )
        .with_panel(
            table_panel(
                "Rates by unit",
                "All-time rates per unit of the chosen provinces and units, each unit under the "
                "code it received with: Map is the structure it belongs to (vn63 until 30 June "
                "2025, vn34 since), Province the one that holds its territory today.",
                *(
                    table_target(
                        named(
                            f"{recorded}{{{UNIT}}}",
                            UNIT_NAMES,
                            "unit",
                            "name, structure, province_name",
                        ),
                        ref,
                    )
                    for (recorded, _, _), ref in zip(rates, "ABC", strict=True)
                ),
                rename={
                    "unit": "Code",
                    "name": "Unit",
                    "structure": "Map",
                    "province_name": "Province (today)",
                    **{
                        f"Value #{ref}": title
                        for (*_, title), ref in zip(rates, "ABC", strict=True)
                    },
                },
                sort_by="On-time rate",
            )
        )
    )


def build() -> dash.Dashboard:
    board = (
        dash.Dashboard("motcua — Leaders' overview")
        .uid(UID)
        .description(
            "One-stop units at a glance: throughput, timeliness, digital government, "
            "the service index by province."
        )
        .tags(["motcua"])
        .editable()
        .time("now-30d", "now")
        .refresh("5m")
        .timezone("browser")
        .with_variable(datasource_variable())
        .with_variable(
            query_variable(
                "province",
                "Province",
                "query_result(max by (province, province_name) (motcua_unit_info))",
                # The value is the province code, the text its name.
                regex='/province="(?<value>[^"]+)".*province_name="(?<text>[^"]+)"/',
            )
        )
        .with_variable(
            query_variable(
                "unit",
                "Unit",
                f"query_result({UNITS_WITH_DOSSIERS})",
                # The value is the unit code, the text its name (labels come sorted: name first).
                regex='/name="(?<text>[^"]+)".*unit="(?<value>[^"]+)"/',
            )
        )
    )
    return by_province(timeliness(throughput(board)))
