"""The operations dashboard: RED per service and route, consumers, dead letters, outbox, processes.

These are process figures (each pod counts its own requests, batches and dead letters), so they
are summed across pods, except the outbox gauges, which every replica reads from the same table.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.models import dashboard as dash_models

from deploy.grafana.common import (
    datasource_variable,
    query_variable,
    stat_panel,
    table_panel,
    table_target,
    target,
    timeseries_panel,
)

UID = "motcua-operations"
JOB = 'job=~"$job"'
RATE = "$__rate_interval"
QUANTILES = (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))


def rate(metric: str, by: str, matchers: str = "") -> str:
    extra = f", {matchers}" if matchers else ""
    return f"sum by ({by}) (rate({metric}{{{JOB}{extra}}}[{RATE}]))"


def quantile(q: str, histogram: str, by: str) -> str:
    return f"histogram_quantile({q}, {rate(histogram + '_bucket', f'{by}, le')})"


def quantile_targets(histogram: str, by: str, legend: str) -> list[prom.Dataquery]:
    return [
        target(quantile(q, histogram, by), f"{legend} {name}", ref=ref)
        for (q, name), ref in zip(QUANTILES, "ABC", strict=True)
    ]


def services(board: dash.Dashboard) -> dash.Dashboard:
    return (
        board.with_row(dash.Row("Services"))
        .with_panel(
            stat_panel(
                "Targets up",
                "Scrape targets answering /metrics, per service.",
                "short",
                target(f"sum by (job) (up{{{JOB}}})", "{{job}}"),
            )
        )
        .with_panel(
            stat_panel(
                "Restarts in the time range",
                "Process restarts seen by Prometheus: changes of a target's process start time "
                "(a container restarted in place keeps its pod address).",
                "short",
                target(
                    f"sum by (job) (changes(process_start_time_seconds{{{JOB}}}[$__range]))",
                    "{{job}}",
                    instant=True,
                ),
            )
        )
        .with_panel(
            stat_panel(
                "Container restarts (kube-state-metrics)",
                "Kubernetes' own restart count of the motcua containers, including restarts "
                "before a process could be scraped (needs kube-state-metrics, which "
                "kube-prometheus-stack installs).",
                "short",
                target(
                    "sum by (pod) (increase(kube_pod_container_status_restarts_total"
                    '{namespace="$namespace", container=~"intake|processing|metrics"}[$__range]))',
                    "{{pod}}",
                    instant=True,
                ),
            )
        )
        .with_panel(
            table_panel(
                "Versions running",
                "Pods per service and version (motcua_build_info).",
                table_target(f"count by (job, service, version) (motcua_build_info{{{JOB}}})"),
                rename={"job": "Job", "service": "Service", "version": "Version", "Value": "Pods"},
                sort_by="Pods",
            )
            .height(5)
            .span(6)
        )
    )


def http(board: dash.Dashboard) -> dash.Dashboard:
    requests = "motcua_http_requests_total"
    durations = "motcua_http_request_duration_seconds"
    errors = rate(requests, "job, handler", 'status="5xx"')
    every = rate(requests, "job, handler")
    return (
        board.with_row(dash.Row("HTTP: rate, errors, duration"))
        .with_panel(
            timeseries_panel(
                "Requests per second, by route",
                "Every route template, the fast reception routes and /metrics included.",
                "reqps",
                target(every, "{{job}} {{handler}}"),
            )
        )
        .with_panel(
            timeseries_panel(
                "Requests per second, by status class",
                "Answers per status class (2xx … 5xx) per service.",
                "reqps",
                target(rate(requests, "job, status"), "{{job}} {{status}}"),
                stacked=True,
            )
        )
        .with_panel(
            timeseries_panel(
                "5xx ratio, by route",
                "Share of answers that were server errors; routes with traffic and no error "
                "show 0 rather than nothing.",
                "percentunit",
                # `or … * 0`: a ratio with no 5xx series at all would otherwise be empty.
                target(f"{errors}\n  / {every}\nor {every} * 0", "{{job}} {{handler}}"),
            )
        )
        .with_panel(
            timeseries_panel(
                "Latency per service",
                "Request duration quantiles per service.",
                "s",
                *quantile_targets(durations, "job", "{{job}}"),
            )
        )
        .with_panel(
            timeseries_panel(
                "Latency p95, by route",
                "95th percentile of the request duration per route.",
                "s",
                target(quantile("0.95", durations, "job, handler"), "{{job}} {{handler}}"),
            )
        )
        .with_panel(
            timeseries_panel(
                "Requests in flight",
                "Requests being handled right now, per service.",
                "short",
                target(f"sum by (job) (motcua_http_requests_in_progress{{{JOB}}})", "{{job}}"),
            )
        )
        .with_panel(
            timeseries_panel(
                "Connections closed to protect the service",
                "Connections a service closed or refused, per second, by reason: idle ones "
                "evicted and newcomers shed (503) at the connection cap, clients too slow with "
                "their headers or body (408), oversized headers (431). docs/reliability.md.",
                "cps",
                target(
                    rate("motcua_http_connections_closed_total", "job, reason"),
                    "{{job}} {{reason}}",
                ),
                stacked=True,
            )
        )
        .with_panel(
            timeseries_panel(
                "Requests rate limited (429)",
                "Requests refused with 429 per second, by the budget they exceeded: caller, "
                "unit, anonymous source, failed authentications of a source.",
                "reqps",
                target(rate("motcua_http_rate_limited_total", "job, budget"), "{{job}} {{budget}}"),
                stacked=True,
            )
        )
    )


def consumers(board: dash.Dashboard) -> dash.Dashboard:
    return (
        board.with_row(dash.Row("Consumers"))
        .with_panel(
            timeseries_panel(
                "Events applied per second",
                "Events applied per consumer group (duplicates excluded).",
                "ops",
                target(rate("motcua_consumer_events_applied_total", "consumer"), "{{consumer}}"),
            )
        )
        .with_panel(
            timeseries_panel(
                "Consumer lag",
                "Records behind the end of the topic, per consumer group and topic "
                "(the sum of the pods' assigned partitions).",
                "short",
                target(
                    f"sum by (consumer, topic) (motcua_consumer_lag{{{JOB}}})",
                    "{{consumer}} {{topic}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Freshness: age of the latest applied event",
                "Now minus the event time of the newest event each group applied. It grows "
                "when the pipeline stalls, or simply when no dossier moves (nights, holidays): "
                "read it with the lag.",
                "s",
                target(
                    "time() - max by (consumer) "
                    f"(motcua_consumer_last_event_timestamp_seconds{{{JOB}}})",
                    "{{consumer}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Batch size",
                "Records per applied batch, per consumer group.",
                "short",
                *quantile_targets("motcua_consumer_batch_size", "consumer", "{{consumer}}"),
            )
        )
        .with_panel(
            timeseries_panel(
                "Batch duration",
                "Seconds to apply one batch (one database transaction), per consumer group.",
                "s",
                *quantile_targets(
                    "motcua_consumer_batch_duration_seconds", "consumer", "{{consumer}}"
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Dead letters, by reason",
                "Events sent to the dead-letter topic (invalid, rejected, unapplicable); any "
                "is worth reading: the topic's x-dead-letter-reason header says why.",
                "short",
                target(
                    "sum by (consumer, reason) "
                    f"(increase(motcua_dead_letters_total{{{JOB}}}[{RATE}]))",
                    "{{consumer}} {{reason}}",
                ),
                bars=True,
            )
        )
    )


def outbox(board: dash.Dashboard) -> dash.Dashboard:
    return (
        board.with_row(dash.Row("Outbox and processes"))
        .with_panel(
            timeseries_panel(
                "Outbox backlog",
                "Events committed but not yet acknowledged by Kafka (the same table seen by "
                "every replica: max, not sum).",
                "short",
                target(f"max by (service) (motcua_outbox_backlog{{{JOB}}})", "{{service}}"),
            )
        )
        .with_panel(
            timeseries_panel(
                "Oldest unpublished event",
                "Age of the oldest event waiting in the outbox (0 when empty).",
                "s",
                target(
                    f"max by (service) (motcua_outbox_oldest_age_seconds{{{JOB}}})",
                    "{{service}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Outbox publishing",
                "Events published per second, and failed publish attempts per second.",
                "ops",
                target(rate("motcua_outbox_published_total", "service"), "{{service}} published"),
                target(
                    rate("motcua_outbox_publish_errors_total", "service"),
                    "{{service}} errors",
                    ref="B",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "CPU, by pod",
                "CPU seconds per second of each process.",
                "short",
                target(
                    f"sum by (job, instance) (rate(process_cpu_seconds_total{{{JOB}}}[{RATE}]))",
                    "{{job}} {{instance}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Resident memory, by pod",
                "Resident memory of each process.",
                "bytes",
                target(
                    f"sum by (job, instance) (process_resident_memory_bytes{{{JOB}}})",
                    "{{job}} {{instance}}",
                ),
            )
        )
    )


def build() -> dash.Dashboard:
    board = (
        dash.Dashboard("motcua — Operations")
        .uid(UID)
        .description(
            "The three services as operators see them: RED per route, consumers, "
            "dead letters, outbox, restarts."
        )
        .tags(["motcua"])
        .editable()
        .time("now-3h", "now")
        .refresh("30s")
        .timezone("browser")
        .with_variable(datasource_variable())
        .with_variable(query_variable("job", "Service", "label_values(motcua_build_info, job)"))
        .with_variable(
            dash.TextBoxVariable("namespace")
            .id("namespace")
            .label("Namespace (kube-state-metrics)")
            .default_value("motcua")
            .current(dash_models.VariableOption(selected=True, text="motcua", value="motcua"))
        )
    )
    return outbox(consumers(http(services(board))))
