#!/usr/bin/env bash
# The coordinator's /metrics as a real Prometheus server sees it: a local
# cluster (2 data-center workers, 1 edge agent) trains a job while
# Debian's `prometheus` scrapes the coordinator every second over HTTPS
# with a viewer token; then, through Prometheus's HTTP API:
#  1. the target is up (TLS, token and format all accepted) and `promtool
#     check metrics` finds nothing to lint in the page;
#  2. the job's gauges move (step rises between scrapes), workers by state
#     and per worker agree with /v1/workers, the edge agent is eligible;
#  3. the Heartbeat latency histogram has a p99 (histogram_quantile over
#     rate()), every call counted with its status code;
#  4. every expression of deploy/kubernetes/grafana-dashboard.json parses
#     and evaluates, and the job's panels have data.
set -euo pipefail
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
export NIGHTSHIFT_COORDINATOR_BIN=$(abs "$1") NIGHTSHIFT_WORKER_BIN=$(abs "$2") NIGHTSHIFT_CLI_BIN=$(abs "$3")
CLUSTER=$(abs "$4")
SPEC=$(abs "$5")
DASHBOARD=$(abs "$6")
T="${TEST_TMPDIR:-$(mktemp -d)}"
export NIGHTSHIFT_CLUSTER_DIR="$T/cluster" NIGHTSHIFT_CONFIG_DIR="$T/config"
NS="$NIGHTSHIFT_CLI_BIN"
PROM_PID=""
fail() {
  echo "FAIL: $*" >&2
  tail -n 20 "$NIGHTSHIFT_CLUSTER_DIR"/coordinator.log "$T/prometheus.log" >&2 || true
  exit 1
}
cleanup() {
  [ -n "$PROM_PID" ] && kill "$PROM_PID" 2>/dev/null && wait "$PROM_PID" 2>/dev/null
  "$CLUSTER" down >/dev/null 2>&1 || true
}
trap cleanup EXIT
command -v prometheus >/dev/null || fail "prometheus is not installed (deploy/setup.sh installs it)"

"$CLUSTER" up --datacenter 2 --edge 1 --threads 1 --parked-debounce 1 >/dev/null
C=$(cat "$NIGHTSHIFT_CLUSTER_DIR/coordinator")
H=$(cat "$NIGHTSHIFT_CLUSTER_DIR/http")
source "$(dirname "$0")/../deploy/cluster_env.sh"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A job that outlasts the checks (cancelled at the end): 2 workers, steps
# of a few milliseconds.
sed -e "s/^min_workers: .*/min_workers: 2/" -e "s/^max_workers: .*/max_workers: 2/" \
  -e "s/^epochs: .*/steps: 10000000/" -e "s/^global_batch_size: .*/global_batch_size: 500/" \
  -e "s/units: 64/units: 1024/" "$SPEC" >"$T/long.textproto"
"$NS" submit "$T/long.textproto" --id=prom >/dev/null

# Prometheus scrapes as any monitoring system would: the CA and a viewer
# token, nothing more.
"$NS" token create --role=viewer --label="prometheus test" >"$T/viewer.token"
PROM_PORT=$(free_port)
cat >"$T/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: nightshift
    scheme: ${H%%://*}
    tls_config:
      ca_file: $NIGHTSHIFT_CLUSTER_DIR/tls/ca.pem
    authorization:
      type: Bearer
      credentials_file: $T/viewer.token
    static_configs:
      - targets: ["${H#*://}"]
EOF
promtool check config "$T/prometheus.yml" >/dev/null || fail "promtool rejects the scrape config"
prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$T/prometheus.log" 2>&1 &
PROM_PID=$!
P="http://127.0.0.1:$PROM_PORT"

# query EXPR: the first result's value ("" if none), exit 1 on an API error.
query() {
  command curl -sf --get "$P/api/v1/query" --data-urlencode "query=$1" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
if d["status"] != "success": sys.exit(1)
r = d["data"]["result"]
print(r[0]["value"][1] if r else "")'
}
# until_query SECONDS EXPR PYTHON_CONDITION_ON_v: polls every 0.2 s.
until_query() {
  local deadline=$(( $(date +%s) + $1 )) v=""
  while :; do
    v=$(query "$2" 2>/dev/null || true)
    if [ -n "$v" ] && /usr/bin/python3 -c "import sys; v=float(sys.argv[1]); sys.exit(0 if ($3) else 1)" "$v"; then
      echo "$v"; return 0
    fi
    [ "$(date +%s)" -lt "$deadline" ] || { echo "last value of $2: '${v}'" >&2; return 1; }
    sleep 0.2
  done
}
json() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

echo "== 1. the target is up; the page passes promtool's lint"
until_query 30 'up{job="nightshift"}' 'v == 1' >/dev/null || fail "Prometheus cannot scrape the coordinator"
curl -sf "$H/metrics" >"$T/metrics.txt"
lint=$(promtool check metrics <"$T/metrics.txt" 2>&1) || fail "promtool check metrics: $lint"
[ -z "$lint" ] || fail "promtool check metrics: $lint"

echo "== 2. job gauges move; workers agree with /v1/workers"
first=$(until_query 60 'nightshift_job_step{job_id="prom"}' 'v > 0') || fail "no step for job prom"
later=$(until_query 60 'nightshift_job_step{job_id="prom"}' "v > $first") || fail "the step did not rise past $first"
echo "step $first, then $later"
until_query 30 'nightshift_job_workers{job_id="prom"}' 'v == 2' >/dev/null || fail "job prom: want 2 workers"
until_query 30 'nightshift_job_samples_per_second{job_id="prom"}' 'v > 0' >/dev/null || fail "no throughput"
until_query 30 'nightshift_job_loss{job_id="prom"}' 'v > 0' >/dev/null || fail "no loss"
until_query 30 'nightshift_workers{state="busy"}' 'v == 2' >/dev/null || fail "want 2 busy workers"
busy_http=$(curl -sf "$H/v1/workers?state=busy" | json 'len(d["workers"])')
[ "$busy_http" = 2 ] || fail "/v1/workers says $busy_http busy workers"
until_query 30 'count(nightshift_worker_state{state="busy",pool="datacenter"})' 'v == 2' >/dev/null \
  || fail "per-worker state series"
until_query 30 'nightshift_edge_worker_eligible{worker="edge-0"}' 'v == 1' >/dev/null || fail "edge-0 eligibility"

echo "== 3. heartbeat latency histogram and call counters"
p99=$(until_query 30 'histogram_quantile(0.99, sum by (le) (rate(nightshift_grpc_server_handling_seconds_bucket{grpc_method="Heartbeat"}[10s])))' 'v > 0 and v < 1') \
  || fail "no heartbeat p99 under 1 s"
echo "heartbeat p99 over 10 s: ${p99} s"
until_query 30 'sum(nightshift_grpc_server_handled_total{grpc_method="Heartbeat",grpc_code="OK"})' 'v > 3' >/dev/null \
  || fail "heartbeats not counted by code"
until_query 30 'sum(nightshift_grpc_server_handled_total{grpc_method="SubmitJob",grpc_code="OK"})' 'v == 1' >/dev/null \
  || fail "SubmitJob not counted"
until_query 30 'sum(nightshift_http_requests_total{handler="/metrics",code="200"})' 'v > 1' >/dev/null \
  || fail "the scrapes are not counted"

echo "== 4. every Grafana expression evaluates; the job's panels have data"
/usr/bin/python3 - "$DASHBOARD" "$P" <<'PY'
import json, sys, urllib.parse, urllib.request
board = json.load(open(sys.argv[1]))
exprs = [(p["title"], t["expr"]) for p in board["panels"] for t in p["targets"]]
assert len(exprs) >= 10, exprs
empty = []
for title, expr in exprs:
    q = expr.replace("$__rate_interval", "10s").replace("$job_id", ".*")
    url = sys.argv[2] + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
    try:
        d = json.load(urllib.request.urlopen(url))
    except urllib.error.HTTPError as e:
        sys.exit(f"panel '{title}': Prometheus refuses {q}: {e.read().decode()}")
    if not d["data"]["result"]:
        empty.append(title)
print(f"{len(exprs)} expressions evaluated; without data now: {sorted(set(empty))}")
for must in ["Progress (steps done / steps)", "Throughput", "Training loss", "Workers by state",
             "Heartbeat latency", "gRPC calls", "Edge agents eligible"]:
    assert must not in empty, f"panel '{must}' has no data"
PY

"$NS" cancel prom >/dev/null
echo "PASS"
