#!/usr/bin/env bash
# `make demo`: start the local platform and the three services, simulate counters and officers
# over HTTP, show the counts at /metrics and the province league table, print where to look.
# Ctrl-C (or `make demo-stop`) stops it all.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
LOGS=.local/logs
mkdir -p "$LOGS"

stop_all() {
  for pidfile in .local/*.pid; do
    [ -f "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
  $PY deploy/local/keycloak.py down
  $PY deploy/local/motcua_local.py down
}

if [ "${1:-}" = "stop" ]; then stop_all; exit 0; fi

# Ctrl-C from here on (start-up, the simulation, or the wait at the end) stops everything.
trap 'echo; echo "demo: stopping"; stop_all; exit 130' INT TERM

$PY deploy/local/motcua_local.py up
# shellcheck disable=SC1091
source .local/env
export MOTCUA_ENVIRONMENT=development

# The identity provider: clerks sign in at Keycloak (Java 21+ and ~160 MB from Maven Central the
# first time). Without it the demo still runs, on development tokens.
signin="development tokens (motcua token)"
if $PY deploy/local/keycloak.py up; then
  # shellcheck disable=SC1091
  source .local/keycloak.env
  signin="Keycloak at $MOTCUA_KEYCLOAK_URL (realm motcua)"
else
  echo "demo: Keycloak did not start (above); the clerks use development tokens instead"
fi

for service in intake processing metrics; do
  var="MOTCUA_${service^^}_PORT"
  port=${!var}
  if [ -f ".local/$service.pid" ] && kill -0 "$(cat ".local/$service.pid")" 2>/dev/null; then
    continue
  fi
  nohup .venv/bin/motcua serve "$service" --port "$port" >"$LOGS/$service.log" 2>&1 &
  echo $! >".local/$service.pid"
done

for service in intake processing metrics; do
  var="MOTCUA_${service^^}_PORT"
  for _ in $(seq 1 120); do
    if curl -fs "http://127.0.0.1:${!var}/readyz" >/dev/null; then break; fi
    sleep 0.5
  done
  curl -fs "http://127.0.0.1:${!var}/readyz" >/dev/null \
    || { echo "demo: $service did not become ready; see $LOGS/$service.log"; exit 1; }
done

echo "demo: counters and officers of today's map (34 provinces: provincial and commune centers)"
echo "demo: they sign in with $signin"
echo "demo: at work for ${DEMO_SECONDS:-20}s (motcua simulate)"
.venv/bin/motcua simulate --intake "http://127.0.0.1:$MOTCUA_INTAKE_PORT" \
  --processing "http://127.0.0.1:$MOTCUA_PROCESSING_PORT" \
  --rate "${DEMO_RATE:-10}" --duration "${DEMO_SECONDS:-20}" --units 120 --pace 0.5 \
  --seed "$(date +%s)" \
  || { echo "demo: the simulation reported errors (above); make demo-stop stops it all"; exit 1; }
sleep 2
echo
echo "demo: counted at /metrics (motcua_dossiers_received_total, first lines):"
counted=$(curl -fs "http://127.0.0.1:$MOTCUA_METRICS_PORT/metrics" \
  | grep '^motcua_dossiers_received_total' || true)
[ -n "$counted" ] || { echo "demo: nothing counted; see $LOGS/"; exit 1; }
printf '%s\n' "$counted" | sed -n 1,5p
echo
echo "demo: Prometheus scrapes one job per service:"
curl -fs "$MOTCUA_PROMETHEUS_URL/api/v1/targets" | $PY -c '
import json, sys
for t in sorted(json.load(sys.stdin)["data"]["activeTargets"], key=lambda t: t["labels"]["job"]):
    print("  %-18s %-36s %s" % (t["labels"]["job"], t["scrapeUrl"], t["health"]))
' || echo "  (Prometheus did not answer at $MOTCUA_PROMETHEUS_URL)"
echo
table=$(.venv/bin/motcua report --url "http://127.0.0.1:$MOTCUA_METRICS_PORT" --scope province)
printf '%s\n' "$table" | sed -n 1,16p
echo "  ... ($(printf '%s\n' "$table" | wc -l) lines: motcua report --url http://127.0.0.1:$MOTCUA_METRICS_PORT)"
cat <<MSG

Where to look:
  intake API docs   http://127.0.0.1:$MOTCUA_INTAKE_PORT/docs
  officers' API     http://127.0.0.1:$MOTCUA_PROCESSING_PORT/docs
  metrics API docs  http://127.0.0.1:$MOTCUA_METRICS_PORT/docs
  metrics           http://127.0.0.1:$MOTCUA_METRICS_PORT/metrics
  Prometheus        $MOTCUA_PROMETHEUS_URL/graph?g0.expr=motcua_dossiers_received_total
  scraped services  $MOTCUA_PROMETHEUS_URL/targets (jobs motcua-intake, motcua-processing, motcua-metrics)
  HTTP per route    $MOTCUA_PROMETHEUS_URL/graph?g0.expr=sum+by+(job,handler)+(rate(motcua_http_requests_total[1m]))
  rules and alerts  $MOTCUA_PROMETHEUS_URL/alerts (deploy/prometheus/rules.yml, as in Kubernetes)
  logs              $LOGS/
Grafana dashboards: deploy/k8s/base/dashboards/leaders.json and operations.json. In any Grafana:
  add a Prometheus data source with URL $MOTCUA_PROMETHEUS_URL, then Dashboards > New > Import,
  upload each file and pick that data source. On Kubernetes the Grafana sidecar loads them
  (docs/operations.md).
A counter token:    .venv/bin/motcua token --unit T01.X00004 --role counter
  (the Public Administration Service Center of phường Ba Đình, Hà Nội; codes: docs/reference-data.md)
Keycloak (if it started): ${MOTCUA_KEYCLOAK_URL:-not running}/admin (user admin); the clerks are
  realm motcua's users (counter-t01.x00004, officer-t01.x00004 and the simulator's), passwords
  in .local/keycloak.env; signing in by hand: README "Trying it by hand"
History on the old map (63 provinces), then its table (after \`source .local/env\`):
  .venv/bin/motcua simulate --write-import history.jsonl --as-of 2024-05-06 --days 14 --per-day 500
  .venv/bin/motcua import history.jsonl && .venv/bin/motcua report --period 2024-05 \
    --url http://127.0.0.1:$MOTCUA_METRICS_PORT

Press Ctrl-C to stop everything (or run \`make demo-stop\` from another shell).
MSG
if [ -t 0 ] && [ -z "${CI:-}" ]; then
  trap 'echo; echo "demo: stopping"; stop_all; exit 0' INT TERM
  while true; do sleep 3600; done
fi
# In CI (or without a terminal) the demo ends here and leaves it all running: make demo-stop.
trap - INT TERM
