# Shell helpers of the elastic end-to-end tests (elastic_e2e_test.sh,
# chaos_e2e_test.sh), sourced after the test has set C (coordinator
# address), H (HTTP URL), D (cluster folder), NS (CLI), SPEC, READER, T and
# NIGHTSHIFT_WORKER_BIN, and defined fail().
source "$(dirname "${BASH_SOURCE[0]}")/../deploy/cluster_env.sh"
json() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
job() { curl -sf "$H/v1/jobs/$1" | json "$2"; }
metric() { curl -sf "$H/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
# until SECONDS CONDITION...: polls the condition every 50 ms.
until_true() {
  local deadline=$(( $(date +%s) + $1 )); shift
  while ! "$@" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}
start_worker() {  # start_worker NAME: one more data-center worker, as `up` starts them
  # shellcheck disable=SC2046
  "$NIGHTSHIFT_WORKER_BIN" --coordinator="$C" --pool=datacenter --threads=1 --listen=127.0.0.1:0 \
    --name="$1" --scratch_dir="$D/scratch" $(worker_flags) >"$D/$1.log" 2>&1 &
  echo $! >"$D/$1.pid"
}
pid() { cat "$D/$1.pid"; }
workers_are() { [ "$(job "$1" 'int(d.get("progress", {}).get("workers", 0))')" = "$2" ] && \
                [ "$(job "$1" 'len(d.get("workers", []))')" = "$2" ]; }
step_at_least() { [ "$(job "$1" 'int(d.get("progress", {}).get("step", 0))')" -ge "$2" ]; }
state_is() { [ "$(job "$1" 'd["state"]')" = "$2" ]; }
# Mean samples/s of the job's progress reports with N workers (the first
# of them, half in the old generation, left out).
throughput() {
  curl -sf "$H/v1/jobs/$1/history" | /usr/bin/python3 -c "
import json, statistics, sys
d = json.load(sys.stdin)
r = [p['samplesPerSecond'] for p in d['progress'] if p.get('workers') == $2 and p.get('samplesPerSecond')]
print(round(statistics.mean(r[1:] or r)) if r else 0)"
}
compare_models() {  # compare_models A B TOL
  /usr/bin/python3 - "$READER" "$1" "$2" "$3" <<'PY'
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("reader", sys.argv[1])
reader = importlib.util.module_from_spec(spec); spec.loader.exec_module(reader)
a, _ = reader.read(sys.argv[2]); b, _ = reader.read(sys.argv[3])
assert sorted(a) == sorted(b), (sorted(a), sorted(b))
worst = 0
for name in a:
    x, y = a[name].astype(np.float64), b[name].astype(np.float64)
    worst = max(worst, np.max(np.abs(x - y) / np.maximum(1.0, np.abs(y))))
print(f"{sys.argv[2].split('/')[-1]} vs {sys.argv[3].split('/')[-1]}: max relative difference {worst:.2e}")
assert worst <= float(sys.argv[4])
PY
}
# The job of every section: long enough (batches of 1000, 4096 hidden units:
# ~20 ms steps on one core) for the events to land mid-run; each section's clean run is the same spec on one worker.
elastic_spec() {  # elastic_spec MIN MAX STEPS
  sed -e "s/^min_workers: .*/min_workers: $1/" -e "s/^max_workers: .*/max_workers: $2/" \
      -e "s/^epochs: .*/steps: $3/" -e "s/^global_batch_size: .*/global_batch_size: 1000/" \
      -e "s/units: 64/units: 4096/" "$SPEC"
}
export_and_compare() {  # export_and_compare JOB CLEAN_JOB
  "$NS" export "$1" "$T/$1.safetensors" --coordinator="$C" >/dev/null || fail "export $1"
  "$NS" export "$2" "$T/$2.safetensors" --coordinator="$C" >/dev/null || fail "export $2"
  compare_models "$T/$1.safetensors" "$T/$2.safetensors" 1e-4 || fail "$1's model is not the clean run's"
}

# SIGKILLs the coordinator, waits until worker $1 has noticed (three failed
# heartbeats), and starts it again on the same ports and --state_dir.
kill_and_restart_coordinator() {
  kill -9 "$(pid coordinator)"
  local before
  before=$(grep -c "heartbeat failed" "$D/$1.log" || true)
  until_true 30 bash -c "[ \$(grep -c 'heartbeat failed' '$D/$1.log') -ge $((before + 3)) ]" \
    || fail "$1 did not notice the outage"
  # shellcheck disable=SC2046
  "$NIGHTSHIFT_COORDINATOR_BIN" --listen="$C" --http="${H#*://}" --state_dir="$D/state" $(coordinator_flags) \
    >>"$D/coordinator.log" 2>&1 &
  echo $! >"$D/coordinator.pid"
  until_true 30 curl -sf "$H/healthz" || fail "the coordinator did not come back"
}
