#!/usr/bin/env bash
# The edge agent measured from outside, on a local cluster of real
# processes (a coordinator and one nightshift-worker --pool=edge driven by
# its vehicle-state file, parked debounce 1 ms): preemption latency over
# --events ignition-on changes during compute (from the state file's
# rewrite to the agent's CPU back to idle; p50/p90/p99/max, target p99 ≤
# 200 ms), and the agent's CPU and resident memory while training, with
# the ignition on, and with no job. bench/edge_agent_probe.py says how.
# The job: the Fashion-MNIST MLP as one diloco replica with a round far
# longer than the run, so the agent always computes when it may.
#
# usage: bench/run_edge_agent.sh [--events=N]   (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=200
for a in "$@"; do
  case "$a" in
    --events=*) EVENTS="${a#*=}" ;;
    *) echo "usage: $0 [--events=N]" >&2; exit 2 ;;
  esac
done
bazel build -c opt //coordinator:nightshift-coordinator //worker:nightshift-worker //cli:nightshift >/dev/null 2>&1
OUT=$(mktemp -d)
export NIGHTSHIFT_CLUSTER_DIR="$OUT/cluster" NIGHTSHIFT_CONFIG_DIR="$OUT/config"
NS=bazel-bin/cli/nightshift
trap 'deploy/local_cluster.sh down >/dev/null 2>&1 || true' EXIT
deploy/local_cluster.sh up --datacenter 0 --edge 1 --threads 1 --parked-debounce 0.001 >/dev/null
{
  sed -e '/^epochs:/d' -e '/^checkpoint_interval_steps/d' -e '/^min_workers/d' -e '/^max_workers/d' \
    examples/fashion_mlp.textproto
  echo 'steps: 1000000'
  echo 'min_workers: 1'
  echo 'max_workers: 1'
  echo 'pools: WORKER_POOL_EDGE'
  echo 'sync { diloco { inner_steps: 1000000 rounds: 1 quorum: 1 over_selection: 0 } }'
} >"$OUT/job.textproto"
$NS submit "$OUT/job.textproto" --id=edge-bench >/dev/null
/usr/bin/python3 bench/edge_agent_probe.py "$(cat "$NIGHTSHIFT_CLUSTER_DIR/edge-0.pid")" \
  "$NIGHTSHIFT_CLUSTER_DIR/edge-0/vehicle.json" "$NIGHTSHIFT_CLUSTER_DIR/edge-0.log" \
  "$EVENTS" "$OUT/probe.json" \
  $NS cancel edge-bench
echo "the agent's log (for the time of a slow event above): $NIGHTSHIFT_CLUSTER_DIR/edge-0.log" >&2
/usr/bin/python3 - "$OUT/probe.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
missed = r["missed"]
print(f"preemption, {r['events']} ignition-on events during compute "
      f"({missed['round'] + missed['start-up']} never idle within 1.5 s), target p99 <= 200 ms:")
for key, name in [("all", "all events"), ("round", "in a round's inner steps"),
                  ("start-up", "in the start-up (data set load)")]:
    q = r[key]
    if q is None:
        print(f"  {name:32} none")
        continue
    print(f"  {name:32} {q['count']:4} events  p50 {q['p50_ms']:6.1f} ms  p90 {q['p90_ms']:6.1f} ms  "
          f"p99 {q['p99_ms']:6.1f} ms  max {q['max_ms']:6.1f} ms")
print(f"  the agent's log: {r['trainer_ready']}\n")
print("| agent state | CPU (share of one core) | resident memory |")
print("|---|---|---|")
for key, name in [("training", "training (parked, eligible)"), ("ineligible", "ignition on (preempted, job running)"),
                  ("nojob", "eligible, no job")]:
    print(f"| {name} | {r[key + '_cpu'] * 100:.2f}% | {r[key + '_rss_mib']:.0f} MiB |")
PY
