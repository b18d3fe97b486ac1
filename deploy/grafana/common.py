"""Building blocks shared by the dashboards: the datasource variable, queries and panel shapes."""

from __future__ import annotations

import json

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dash_models
from grafana_foundation_sdk.models import prometheus as prom_models

# Every panel, target and query variable points at the datasource the viewer picks, so one JSON
# works in any Grafana whatever its Prometheus datasource is called.
DATASOURCE = dash_models.DataSourceRef(type_val="prometheus", uid="${datasource}")

# The metrics service's aggregates are identical on every replica: take the max, never the sum.
DEDUP = "max without (instance, pod)"


def dedup(expr: str) -> str:
    return f"{DEDUP} ({expr})"


def datasource_variable() -> dash.DatasourceVariable:
    return (
        dash.DatasourceVariable("datasource")
        .id("datasource")
        .label("Data source")
        .type("prometheus")
        # "default" is Grafana's name for the instance's default datasource.
        .current(dash_models.VariableOption(selected=True, text="default", value="default"))
    )


def query_variable(
    name: str, label: str, query: str, *, regex: str = "", multi: bool = True
) -> dash.QueryVariable:
    """A variable filled from Prometheus; "All" is `.*` so that queries keep a plain regex."""
    variable = (
        dash.QueryVariable(name)
        .id(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dash_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_models.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(True)
        .all_value(".*")
        .current(dash_models.VariableOption(selected=True, text="All", value="$__all"))
    )
    if regex:
        variable = variable.regex(regex)
    return variable


def target(expr: str, legend: str = "", *, ref: str = "A", instant: bool = False) -> prom.Dataquery:
    query = (
        prom.Dataquery()
        .expr(expr)
        .ref_id(ref)
        .datasource(DATASOURCE)
        .editor_mode(prom_models.QueryEditorMode.CODE)
    )
    if legend:
        query = query.legend_format(legend)
    return query.instant() if instant else query.range()


def table_target(expr: str, ref: str = "A") -> prom.Dataquery:
    return target(expr, ref=ref, instant=True).format(prom_models.PromQueryFormat.TABLE)


def stat_panel(title: str, description: str, unit: str, *targets: prom.Dataquery) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .height(5)
        .span(6)
        .graph_mode(common_models.BigValueGraphMode.AREA)
        .color_mode(common_models.BigValueColorMode.VALUE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
    )
    for query in targets:
        panel = panel.with_target(query)
    return panel


def timeseries_panel(
    title: str,
    description: str,
    unit: str,
    *targets: prom.Dataquery,
    bars: bool = False,
    stacked: bool = False,
    interval: str = "",
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .height(8)
        .span(12)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common_models.LegendDisplayMode.LIST)
            .placement(common_models.LegendPlacement.BOTTOM)
        )
    )
    if bars:
        panel = panel.draw_style(common_models.GraphDrawStyle.BARS).fill_opacity(80)
    if stacked:
        panel = panel.stacking(
            common_builders.StackingConfig().mode(common_models.StackingMode.NORMAL)
        )
    if interval:
        # A minimum step: with `[1d]` windows, one point per day is one bar per day.
        panel = panel.interval(interval)
    for query in targets:
        panel = panel.with_target(query)
    return panel


def table_panel(
    title: str,
    description: str,
    *targets: prom.Dataquery,
    rename: dict[str, str],
    sort_by: str,
) -> table.Panel:
    """An instant table; several targets are merged into one row per label set."""
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .height(10)
        .span(12)
        .sort_by([common_builders.TableSortByFieldState().display_name(sort_by).desc(True)])
    )
    for query in targets:
        panel = panel.with_target(query)
    if len(targets) > 1:
        panel = panel.with_transformation(dash_models.DataTransformerConfig("merge", options={}))
    return panel.with_transformation(
        dash_models.DataTransformerConfig(
            "organize",
            options={"excludeByName": {"Time": True}, "renameByName": rename},
        )
    )


def ranking_panel(title: str, description: str, query: prom.Dataquery) -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .height(10)
        .span(12)
        .min(0)
        .max(100)
        .display_mode(common_models.BarGaugeDisplayMode.BASIC)
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .reduce_options(common_builders.ReduceDataOptions().values(False).calcs(["lastNotNull"]))
        .with_target(query)
    )


def render(builder: dash.Dashboard) -> str:
    """The dashboard's JSON with panel ids numbered in order (stable, unique), keys sorted."""
    model = builder.build()
    for number, panel in enumerate(model.panels or [], start=1):
        panel.id_val = number
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
