#!/usr/bin/env bash
# A real local cluster (coordinator + 3 data-center + 1 edge worker
# processes on free loopback ports) driven through the CLI and the HTTP API.
# Its workers share no memory (--no-shared-memory): their rings run over
# mutual-TLS data sockets, as between machines (other tests cover shared
# memory).
#  1. submit -> SUCCEEDED; the HTTP JSON and the gRPC API agree;
#  2. equivalence: 3 workers vs 1, tensor by tensor from exported models;
#  3. bad input: invalid spec, unknown id, cancelling a finished job;
#  4. two jobs at once on disjoint workers, cancel frees the workers;
#  5. a data set missing on the workers fails the job naming worker and path;
#  6. a worker killed mid-job: a job that needs it waits for workers
#     (WAITING), then fails naming it; a resubmit works; 6b. a job that may
#     shrink survives the kill, in generation 2, with a clean run's model
#     (1e-4);
#  7. the coordinator restarted keeps every job and its history.
set -euo pipefail
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
export NIGHTSHIFT_COORDINATOR_BIN=$(abs "$1") NIGHTSHIFT_WORKER_BIN=$(abs "$2") NIGHTSHIFT_CLI_BIN=$(abs "$3")
CLUSTER=$(abs "$4")
SPEC=$(abs "$5")
READER=$(abs "$6")
T="${TEST_TMPDIR:-$(mktemp -d)}"
export NIGHTSHIFT_CLUSTER_DIR="$T/cluster" NIGHTSHIFT_CONFIG_DIR="$T/config"
NS="$NIGHTSHIFT_CLI_BIN"
fail() { echo "FAIL: $*" >&2; tail -n 20 "$NIGHTSHIFT_CLUSTER_DIR"/*.log >&2 || true; exit 1; }
trap '"$CLUSTER" down >/dev/null 2>&1 || true' EXIT

"$CLUSTER" up --datacenter 3 --edge 1 --threads 1 --no-shared-memory
C=$(cat "$NIGHTSHIFT_CLUSTER_DIR/coordinator")
H=$(cat "$NIGHTSHIFT_CLUSTER_DIR/http")
D="$NIGHTSHIFT_CLUSTER_DIR"
source "$(dirname "$0")/../deploy/cluster_env.sh"
spec_with() {  # spec_with MIN MAX STEPS > file
  sed -e "s/^min_workers: .*/min_workers: $1/" -e "s/^max_workers: .*/max_workers: $2/" \
      -e "s/^epochs: .*/steps: $3/" "$SPEC"
}
json() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# compare_models A B TOL: same tensors, each within a max relative
# difference of TOL (denominator at least 1); prints each figure.
compare_models() {
  /usr/bin/python3 - "$READER" "$1" "$2" "$3" <<'PY'
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("reader", sys.argv[1])
reader = importlib.util.module_from_spec(spec); spec.loader.exec_module(reader)
a, _ = reader.read(sys.argv[2]); b, _ = reader.read(sys.argv[3])
assert sorted(a) == sorted(b), (sorted(a), sorted(b))
for name in a:
    x, y = a[name].astype(np.float64), b[name].astype(np.float64)
    err = np.max(np.abs(x - y) / np.maximum(1.0, np.abs(y)))
    print(f"{sys.argv[2].split('/')[-1]} vs {sys.argv[3].split('/')[-1]} {name}: max relative difference {err:.2e}")
    assert err <= float(sys.argv[4]), name
PY
}

echo "== 1. submit, watch, HTTP and gRPC agree"
spec_with 3 3 60 >"$T/three.textproto"
"$NS" submit "$T/three.textproto" --id=three --watch --coordinator="$C" >"$T/watch.txt" 2>/dev/null \
  || { cat "$T/watch.txt"; fail "job three did not succeed"; }
grep -q "final test accuracy" "$T/watch.txt" || fail "watch printed no final accuracy"
grep -q "job three generation [0-9]* rank 0: data to peers 1 TLS socket, 2 TLS socket" "$D/dc-"*.log \
  || fail "the ring did not run over TLS data sockets"
[ "$(curl -sf "$H/healthz")" = "ok" ] || fail "/healthz"
state=$(curl -sf "$H/v1/jobs/three" | json 'd["state"]')
[ "$state" = "JOB_STATE_SUCCEEDED" ] || fail "HTTP state $state"
status=$("$NS" status three --coordinator="$C")
grep -q "state:      SUCCEEDED" <<<"$status" || fail "gRPC status disagrees"
nworkers=$(curl -sf "$H/v1/jobs/three" | json 'len(d["workers"])')
[ "$nworkers" = 3 ] || fail "job three ran on $nworkers workers, want 3"
curl -sf "$H/v1/jobs/three/history" | json '[e["state"] for e in d["events"]]' | grep -q "SUCCEEDED" || fail "history"
curl -sf "$H/v1/jobs" | json '[j["id"] for j in d["jobs"]]' | grep -q three || fail "/v1/jobs"
curl -sf "$H/v1/workers" | json '[w["pool"] for w in d["workers"]]' | grep -q EDGE || fail "/v1/workers misses the edge worker"
# The edge agent's vehicle (local_cluster.sh wrote its state file): its
# eligibility and reason reach `nightshift workers`, /v1/workers and
# /metrics, and follow the file when the gateway rewrites it.
edge_says() {  # WHAT: wait (10 s at most) until `nightshift workers` shows it for edge-0
  for _ in $(seq 1 100); do
    "$NS" workers --coordinator="$C" | grep '^w-.* edge-0 ' | grep -q "$1" && return 0
    sleep 0.1
  done
  "$NS" workers --coordinator="$C" >&2
  return 1
}
edge_says "eligible: parked .* charging at 7.4 kW, on ethernet" || fail "edge-0 is not eligible"
# (grep without -q reads the whole page: -q would close the pipe early and curl fail under pipefail.)
curl -sf "$H/metrics" | grep '^nightshift_edge_worker_eligible{worker="edge-0"} 1$' >/dev/null || fail "/metrics eligibility"
vehicle="$NIGHTSHIFT_CLUSTER_DIR/edge-0/vehicle.json"
sed 's/IGNITION_OFF/IGNITION_ON/' "$vehicle" >"$vehicle.new" && mv "$vehicle.new" "$vehicle"
edge_says "ineligible: ignition on" || fail "edge-0 did not see the ignition"
curl -sf "$H/v1/workers?pool=edge" | json '[w["eligibility"].get("reason") for w in d["workers"]]' | grep -q "ignition on" \
  || fail "/v1/workers?pool=edge lacks the reason"
echo "{not json" >"$vehicle.new" && mv "$vehicle.new" "$vehicle"
edge_says "ineligible: vehicle state unreadable: .*vehicle.json" || fail "a malformed state file is not named"
curl -sf "$H/metrics" | grep '^nightshift_jobs_succeeded_total 1$' >/dev/null || fail "/metrics"
curl -s "$H/v1/jobs/nope" | json 'd["code"]' | grep -q NOT_FOUND || fail "HTTP NOT_FOUND"

echo "== 2. equivalence: 3 workers vs 1"
spec_with 1 1 60 >"$T/one.textproto"
"$NS" submit "$T/one.textproto" --id=one --watch --coordinator="$C" >/dev/null 2>&1 || fail "job one"
"$NS" export three "$T/three.safetensors" --coordinator="$C" >/dev/null || fail "export three"
"$NS" export one "$T/one.safetensors" --coordinator="$C" >/dev/null || fail "export one"
compare_models "$T/three.safetensors" "$T/one.safetensors" 1e-4 || fail "models differ"

echo "== 3. bad input"
sed 's/lr: 0.02/lr: 0/' "$T/one.textproto" >"$T/bad.textproto"
if "$NS" submit "$T/bad.textproto" --coordinator="$C" 2>"$T/err.txt"; then fail "bad spec accepted"; fi
grep -q "INVALID_ARGUMENT: optimizer.sgd.lr: must be > 0" "$T/err.txt" || { cat "$T/err.txt"; fail "bad spec message"; }
if "$NS" status no-such-job --coordinator="$C" 2>"$T/err.txt"; then fail "unknown id"; fi
grep -q "NOT_FOUND" "$T/err.txt" || fail "unknown id code"
if "$NS" cancel one --coordinator="$C" 2>"$T/err.txt"; then fail "cancel of a finished job"; fi
grep -q "FAILED_PRECONDITION" "$T/err.txt" || fail "cancel finished code"
sed -e 's/^min_workers: .*/min_workers: 1/' "$T/one.textproto" | sed 's/^max_workers: .*/max_workers: 1\npools: WORKER_POOL_EDGE/' >"$T/edge.textproto"
if "$NS" submit "$T/edge.textproto" --coordinator="$C" 2>"$T/err.txt"; then fail "edge allreduce accepted"; fi
grep -q "sync.diloco" "$T/err.txt" || fail "edge refusal does not point to sync.diloco"

echo "== 4. two jobs at once, cancel frees the workers"
spec_with 2 2 100000 >"$T/long2.textproto"
spec_with 1 1 100000 >"$T/long1.textproto"
"$NS" submit "$T/long2.textproto" --id=long2 --coordinator="$C" >/dev/null
"$NS" submit "$T/long1.textproto" --id=long1 --coordinator="$C" >/dev/null
for _ in $(seq 1 50); do
  running=$(curl -sf "$H/v1/jobs" | json 'sum(j["state"]=="JOB_STATE_RUNNING" for j in d["jobs"])')
  [ "$running" = 2 ] && break; sleep 0.2
done
[ "$running" = 2 ] || fail "the two jobs are not running together"
busy=$(curl -sf "$H/v1/workers" | json '" ".join(sorted(w["jobId"] for w in d["workers"] if w["jobId"]))')
[ "$busy" = "long1 long2 long2" ] || fail "workers busy with '$busy', want 'long1 long2 long2' (disjoint)"
"$NS" cancel long2 --coordinator="$C" >/dev/null
"$NS" cancel long1 --coordinator="$C" >/dev/null
for _ in $(seq 1 50); do
  idle=$(curl -sf "$H/v1/workers" | json 'sum(w["state"]=="WORKER_STATE_IDLE" for w in d["workers"])')
  [ "$idle" = 4 ] && break; sleep 0.2
done
[ "$idle" = 4 ] || fail "cancelled jobs did not free their workers ($idle idle)"

echo "== 5. a missing data set fails the job, naming worker and path"
cat >"$T/nodata.textproto" <<SPEC
model { layers { flatten {} } layers { dense { units: 10 } } }
dataset { idx { dir: "$T/no-such-data" } }
optimizer { sgd { lr: 0.1 } }
global_batch_size: 8
steps: 5
SPEC
if "$NS" submit "$T/nodata.textproto" --id=nodata --watch --coordinator="$C" >"$T/out.txt" 2>/dev/null; then fail "nodata succeeded"; fi
grep -q "FAILED" "$T/out.txt" || fail "nodata did not fail"
grep -q "worker dc-[0-9]" "$T/out.txt" || { cat "$T/out.txt"; fail "no worker named"; }
grep -q "$T/no-such-data/train-images-idx3-ubyte.gz: cannot open" "$T/out.txt" || fail "no path named"

echo "== 6. a worker killed mid-job: below min_workers the job waits, then fails naming it"
(spec_with 3 3 100000; echo "wait_for_workers_seconds: 4") >"$T/long3.textproto"
"$NS" submit "$T/long3.textproto" --id=victim --coordinator="$C" >/dev/null
for _ in $(seq 1 100); do
  step=$(curl -sf "$H/v1/jobs/victim" | json 'int(d.get("progress", {}).get("step", 0))')
  [ "$step" -ge 20 ] && break; sleep 0.2
done
kill -9 "$(cat "$NIGHTSHIFT_CLUSTER_DIR/dc-1.pid")"
start=$(date +%s)
for _ in $(seq 1 100); do
  state=$(curl -sf "$H/v1/jobs/victim" | json 'd["state"]')
  [ "$state" != JOB_STATE_RUNNING ] && break; sleep 0.05
done
[ "$state" = JOB_STATE_WAITING ] || fail "victim is $state, not waiting for workers"
curl -sf "$H/v1/jobs/victim" | json 'd["reason"]' | grep -q "waiting for workers: 2 of at least 3" \
  || fail "the waiting job's reason does not say so"
status=$("$NS" status victim --coordinator="$C")
grep -q "state:      WAITING" <<<"$status" || fail "the CLI does not show WAITING"
"$NS" watch victim --coordinator="$C" >"$T/out.txt" 2>/dev/null && fail "the job survived a dead worker"
took=$(( $(date +%s) - start ))
grep -q "FAILED" "$T/out.txt" || fail "victim did not fail"
grep -q "lost: dc-1" "$T/out.txt" || { cat "$T/out.txt"; fail "the failure does not name dc-1"; }
echo "victim: $(tail -n 1 "$T/out.txt") (after ${took} s)"
[ "$took" -le 10 ] || fail "took ${took} s to fail, the wait is 4 s"
spec_with 2 2 40 >"$T/again.textproto"
"$NS" submit "$T/again.textproto" --id=again --watch --coordinator="$C" >/dev/null 2>&1 || fail "resubmit after the failure"

echo "== 6b. a job that may shrink survives a worker killed mid-job"
# dc-0 and dc-2 are left. The job runs on both; dc-2 is killed; dc-0
# reports it lost and goes on alone in generation 2 from its last commit.
for _ in $(seq 1 100); do  # both free (their heartbeats released the last job)
  idle=$(curl -sf "$H/v1/workers" | json 'sum(w["state"]=="WORKER_STATE_IDLE" and w["pool"]=="WORKER_POOL_DATACENTER" for w in d["workers"])')
  [ "$idle" = 2 ] && break; sleep 0.1
done
# Batches of 1000 and 4096 hidden units: slow enough steps (~20 ms) that
# the kill lands mid-run.
shrink_spec() {
  spec_with 1 "$1" 1000 | sed -e "s/^global_batch_size: .*/global_batch_size: 1000/" -e "s/units: 64/units: 4096/"
}
shrink_spec 2 >"$T/shrink.textproto"
"$NS" submit "$T/shrink.textproto" --id=shrink --coordinator="$C" >/dev/null
for _ in $(seq 1 300); do
  workers=$(curl -sf "$H/v1/jobs/shrink" | json 'len(d.get("workers", []))')
  step=$(curl -sf "$H/v1/jobs/shrink" | json 'int(d.get("progress", {}).get("step", 0))')
  [ "$workers" = 2 ] && [ "$step" -ge 50 ] && break; sleep 0.02
done
[ "$workers" = 2 ] || fail "job shrink did not start on 2 workers"
kill -9 "$(cat "$NIGHTSHIFT_CLUSTER_DIR/dc-2.pid")"
"$NS" watch shrink --coordinator="$C" >"$T/out.txt" 2>/dev/null || { tail -n 3 "$T/out.txt"; fail "job shrink did not survive"; }
curl -sf "$H/v1/jobs/shrink/history" | json '[e["reason"] for e in d["events"]]' | grep -q "after losing dc-2" \
  || fail "the history does not record the lost worker"
curl -sf "$H/v1/jobs/shrink" | json 'd["generation"]' | grep -q '^2$' || fail "shrink is not in generation 2"
curl -sf "$H/metrics" | grep '^nightshift_job_recoveries_total 1$' >/dev/null || fail "/metrics recoveries"
# Against a clean run, at the 3-vs-1 tolerance.
shrink_spec 1 >"$T/clean.textproto"
"$NS" submit "$T/clean.textproto" --id=clean --watch --coordinator="$C" >/dev/null 2>&1 || fail "job clean"
"$NS" export shrink "$T/shrink.safetensors" --coordinator="$C" >/dev/null || fail "export shrink"
"$NS" export clean "$T/clean.safetensors" --coordinator="$C" >/dev/null || fail "export clean"
compare_models "$T/shrink.safetensors" "$T/clean.safetensors" 1e-4 \
  || fail "the survived run's model is far from the clean run's"

echo "== 7. the coordinator restarted keeps every job and its history"
before=$(curl -sf "$H/v1/jobs" | json 'len(d["jobs"])')
kill "$(cat "$NIGHTSHIFT_CLUSTER_DIR/coordinator.pid")"
while kill -0 "$(cat "$NIGHTSHIFT_CLUSTER_DIR/coordinator.pid")" 2>/dev/null; do sleep 0.1; done
# shellcheck disable=SC2046
"$NIGHTSHIFT_COORDINATOR_BIN" --listen="$C" --http="${H#*://}" $(coordinator_flags) \
  --state_dir="$NIGHTSHIFT_CLUSTER_DIR/state" >>"$NIGHTSHIFT_CLUSTER_DIR/coordinator.log" 2>&1 &
echo $! >"$NIGHTSHIFT_CLUSTER_DIR/coordinator.pid"
for _ in $(seq 1 50); do curl -sf "$H/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
after=$(curl -sf "$H/v1/jobs" | json 'len(d["jobs"])')
[ "$after" = "$before" ] || fail "jobs before restart $before, after $after"
curl -sf "$H/v1/jobs/three/history" | json 'len(d["events"])' | grep -q '^3$' || fail "history lost"
status=$("$NS" status three --coordinator="$C")
grep -q "checkpoint: step 60" <<<"$status" || fail "checkpoint index lost"
echo PASS
