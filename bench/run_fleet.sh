#!/usr/bin/env bash
# A fleet against one coordinator, on this machine (the load generator on
# the same two cores):
#  1. Load: for each fleet size, a fresh secured coordinator
#     (deploy/local_cluster.sh, no workers) running a DiLoCo job on the
#     edge pool (up to 50 replicas, rounds of 100 inner steps modelled at
#     200 samples/s: 16 s of compute), and nightshift-fleet-sim enrolling
#     that many vehicles, then heartbeating at the edge pool's interval
#     (10 s, ±10%) with each vehicle's own idle policy on its trace, the
#     job's replicas running rounds meanwhile. Prints enrollment time,
#     heartbeats/s, latency percentiles and the coordinator's resident
#     memory (target at 100,000: p99 < 50 ms, RSS < 1 GiB). With
#     --find_limit it goes on up the sizes (x1.5) until p99 crosses 50 ms.
#  2. A day (--day): 2,000 vehicles over 24 virtual hours at 720x against
#     the same kind of coordinator and job; eligible vehicles and counted
#     updates by hour into bench/fleet_day.png.
#  3. A day of hybrid training (--hybrid): on one secured cluster with two
#     data-center workers (one thread each), one after another,
#       dc-sync    the data-center-only job: the Fashion-MNIST MLP trained
#                  synchronously on the two-worker ring, batch 16, for
#                  ROUNDS x 100 steps;
#       dc-diloco  the hybrid job's spec with no vehicle: the ring alone as
#                  its one replica;
#       hybrid     the hybrid DiLoCo job (the ring as one replica plus up
#                  to 50 vehicle replicas, rounds of 100 inner steps at
#                  batch 16, int8 deltas, each round closing once every
#                  replica that joined within 2 s of its first is in) against
#                  nightshift-fleet-sim: 1,000 vehicles on their traces
#                  from midnight, every replica training for real, held to
#                  a modelled 1 sample per virtual second (a round is 1,600
#                  virtual seconds) at 100x, until the job ends (ROUNDS
#                  rounds: 47 cover about a day). The simulator runs at
#                  nice 10: on this machine the ring stands for machines of
#                  its own.
#     Prints each job's test accuracy, the vehicles' traffic per step
#     against per-step synchronous training among as many workers, the
#     utilisation of the replicas' eligible time and the work lost to
#     preemption; eligible vehicles and counted updates by hour into
#     bench/fleet_hybrid_day.png.
#
# usage: bench/run_fleet.sh [--sizes=10000,30000,100000] [--warmup=20s]
#                           [--measure=60s] [--find_limit] [--day]
#                           [--hybrid] [--rounds=47]
#   (--sizes= with nothing after it: no load runs, e.g. with --hybrid only)
#                           [--coordinator_bin=PATH] [--simulator_bin=PATH]
#                             (other builds, to compare)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=10000,30000,100000
WARMUP=20s
MEASURE=60s
FIND_LIMIT=0
DAY=0
HYBRID=0
ROUNDS=47
COORDINATOR_BIN=""
SIMULATOR_BIN=""
for a in "$@"; do
  case "$a" in
    --sizes=*) SIZES="${a#*=}" ;;
    --warmup=*) WARMUP="${a#*=}" ;;
    --measure=*) MEASURE="${a#*=}" ;;
    --find_limit) FIND_LIMIT=1 ;;
    --day) DAY=1 ;;
    --hybrid) HYBRID=1 ;;
    --rounds=*) ROUNDS="${a#*=}" ;;
    --coordinator_bin=*) COORDINATOR_BIN="${a#*=}" ;;
    --simulator_bin=*) SIMULATOR_BIN="${a#*=}" ;;
    *) echo "usage: $0 [--sizes=N,N,...] [--warmup=D] [--measure=D] [--find_limit] [--day] [--hybrid] [--rounds=N] [--coordinator_bin=PATH] [--simulator_bin=PATH]" >&2; exit 2 ;;
  esac
done
bazel build -c opt //coordinator:nightshift-coordinator //cli:nightshift //worker:nightshift-worker \
  //fleet:nightshift-fleet-sim >/dev/null 2>&1
export NIGHTSHIFT_COORDINATOR_BIN=${COORDINATOR_BIN:-$PWD/bazel-bin/coordinator/nightshift-coordinator}
SIM_BIN=${SIMULATOR_BIN:-$PWD/bazel-bin/fleet/nightshift-fleet-sim}
export NIGHTSHIFT_WORKER_BIN=$PWD/bazel-bin/worker/nightshift-worker NIGHTSHIFT_CLI_BIN=$PWD/bazel-bin/cli/nightshift
NS=$NIGHTSHIFT_CLI_BIN
OUT=$(mktemp -d)
export NIGHTSHIFT_CLUSTER_DIR="$OUT/cluster" NIGHTSHIFT_CONFIG_DIR="$OUT/config"
trap 'deploy/local_cluster.sh down >/dev/null 2>&1 || true' EXIT
echo "coordinator: $NIGHTSHIFT_COORDINATOR_BIN, simulator: $SIM_BIN"
echo "nproc $(nproc),$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
# The fleet's job: tests/e2e_diloco.textproto on the edge pool alone.
sed -e 's/^min_workers: .*/min_workers: 1/' -e 's/^max_workers: .*/max_workers: 50/' \
  -e 's/^pools: WORKER_POOL_DATACENTER$//' -e 's/^steps: .*/steps: 100000000/' \
  -e 's/inner_steps: .*/inner_steps: 100/' -e 's/quorum: .*/quorum: 10/' \
  tests/e2e_diloco.textproto >"$OUT/fleet.textproto"

# plot_day CSV PNG VEHICLES WHAT TITLE: eligible vehicles and counted
# updates by hour (the simulator's --hourly_csv).
plot_day() {
  /usr/bin/python3 - "$@" <<'PY'
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
src, png, vehicles, what, title = sys.argv[1:6]
rows = list(csv.DictReader(open(src)))
hours = [int(r["hour"]) for r in rows]
fig, ax = plt.subplots(figsize=(8, 4))
ax.bar(hours, [float(r["eligible_vehicles"]) for r in rows], color="#9ecae1", label="eligible vehicles (mean)")
ax.set_xlabel("hour of the simulated day")
ax.set_ylabel(f"vehicles of {int(vehicles):,}")
ax2 = ax.twinx()
ax2.plot(hours, [int(r["updates_counted"]) for r in rows], color="#c62828", marker="o", label="updates counted")
ax2.plot(hours, [int(r["rounds_preempted"]) for r in rows], color="#555555", marker="x", label="rounds preempted")
ax2.set_ylabel(f"per hour ({what})")
fig.legend(loc="lower left")
ax.set_title(title)
fig.tight_layout()
fig.savefig(png, dpi=100)
print("wrote", png)
PY
}

# sim ARGS...: a fresh coordinator with the job, the simulator against it.
sim() {
  rm -rf "$NIGHTSHIFT_CLUSTER_DIR" "$NIGHTSHIFT_CONFIG_DIR"
  deploy/local_cluster.sh up --datacenter 0 --edge 0 >/dev/null
  "$NS" submit "$OUT/fleet.textproto" --id=fleet >/dev/null
  "$NS" token create --role=viewer --label=bench >"$OUT/viewer.token" 2>/dev/null
  # shellcheck disable=SC2046
  "$SIM_BIN" --coordinator="$(cat "$NIGHTSHIFT_CLUSTER_DIR/coordinator")" \
    $(tr '\n' ' ' <"$NIGHTSHIFT_CLUSTER_DIR/worker.flags") --channels=16 \
    --coordinator_pid="$(cat "$NIGHTSHIFT_CLUSTER_DIR/coordinator.pid")" "$@" 2>"$OUT/sim.log"
  echo "job fleet: $("$NS" status fleet | sed -n 's/^progress: *//p' | head -1)"
  deploy/local_cluster.sh down >/dev/null
}

run_size() {  # N: prints the report; its p99 in $P99
  echo "== $1 vehicles"
  sim --vehicles="$1" --warmup="$WARMUP" --measure="$MEASURE" --samples_per_second=200 \
    | tee "$OUT/report-$1.txt"
  P99=$(sed -n '/^latency ms:/s/.* p99 \([0-9.]*\) .*/\1/p' "$OUT/report-$1.txt")
}

if [ -n "$SIZES" ]; then
  IFS=, read -r -a sizes <<<"$SIZES"
  for n in "${sizes[@]}"; do run_size "$n"; done
  if [ "$FIND_LIMIT" = 1 ]; then
    n=${sizes[-1]}
    while /usr/bin/python3 -c "import sys; sys.exit(not float('$P99') < 50)"; do
      n=$((n * 3 / 2))
      run_size "$n"
    done
    echo "the limit: p99 crossed 50 ms at $n vehicles ($P99 ms)"
  fi
fi

if [ "$DAY" = 1 ]; then
  echo "== a day of 2000 vehicles at 720x"
  sim --vehicles=2000 --start_hour=0 --speedup=720 --warmup=10s --measure=110s --reevaluate=10m \
    --samples_per_second=20 --check_view_every=10s --viewer_token_file="$OUT/viewer.token" \
    --hourly_csv="$OUT/day.csv"
  plot_day "$OUT/day.csv" bench/fleet_day.png 2000 "50 replicas" \
    "A simulated day: 2,000 vehicles, one DiLoCo job of up to 50 replicas"
fi

if [ "$HYBRID" = 1 ]; then
  echo "== a day of hybrid training: $ROUNDS rounds, 1000 vehicles"
  rm -rf "$NIGHTSHIFT_CLUSTER_DIR" "$NIGHTSHIFT_CONFIG_DIR"
  deploy/local_cluster.sh up --datacenter 2 --edge 0 --threads 1 >/dev/null
  source deploy/cluster_env.sh
  H=$(cat "$NIGHTSHIFT_CLUSTER_DIR/http")
  STEPS=$((ROUNDS * 100))
  base() {
    sed -e '/^epochs:/d' -e '/^checkpoint_interval_steps/d' -e '/^min_workers/d' \
      -e '/^max_workers/d' -e '/^global_batch_size/d' examples/fashion_mlp.textproto
    echo "steps: $STEPS"
  }
  { base; echo "global_batch_size: 16"; echo "min_workers: 2"; echo "max_workers: 2"; } >"$OUT/dc-sync.textproto"
  {
    base
    echo "global_batch_size: 16"
    echo "min_workers: 1"
    echo "max_workers: 51"
    echo "pools: WORKER_POOL_DATACENTER"
    echo "pools: WORKER_POOL_EDGE"
    echo "sync { diloco { inner_steps: 100 rounds: $ROUNDS replica_batch_size: 16"
    echo "  quorum: 51 over_selection: 0 join_window_seconds: 2 round_deadline_seconds: 60"
    echo "  delta_encoding: DELTA_ENCODING_INT8_BLOCKWISE shards { dirichlet_alpha: 0 } } }"
  } >"$OUT/hybrid.textproto"
  finished() {  # ID: waits for the job's end (at most an hour); prints its state line
    local status
    for _ in $(seq 1 1800); do
      status=$("$NS" status "$1")
      if grep -qE '^state: *(SUCCEEDED|FAILED|CANCELLED)' <<<"$status"; then
        sed -n 's/^state: *//p' <<<"$status"
        return
      fi
      sleep 2
    done
    echo "job $1 did not end within an hour" >&2
    return 1
  }
  accuracy() { "$NS" status "$1" | sed -n 's/^test: *accuracy \([0-9.]*\)%.*/\1/p'; }
  for job in dc-sync dc-diloco; do
    spec="$OUT/$job.textproto"
    [ "$job" = dc-diloco ] && spec="$OUT/hybrid.textproto"
    start=$(date +%s)
    "$NS" submit "$spec" --id="$job" >/dev/null
    echo "$job: $(finished "$job") ($(( $(date +%s) - start )) s)"
  done
  start=$(date +%s)
  "$NS" submit "$OUT/hybrid.textproto" --id=hybrid >/dev/null
  # shellcheck disable=SC2046
  nice -n 10 "$SIM_BIN" --coordinator="$(cat "$NIGHTSHIFT_CLUSTER_DIR/coordinator")" \
    $(tr '\n' ' ' <"$NIGHTSHIFT_CLUSTER_DIR/worker.flags") --channels=4 \
    --coordinator_pid="$(cat "$NIGHTSHIFT_CLUSTER_DIR/coordinator.pid")" \
    --vehicles=1000 --real_trainers=1000 --round_threads=64 --start_hour=0 --speedup=100 \
    --samples_per_second=1 --reevaluate=10m --warmup=1s --measure=3h --until_job_ends \
    --hourly_csv="$OUT/hybrid.csv" >"$OUT/hybrid-report.txt" 2>"$OUT/sim.log" ||
    { tail -20 "$OUT/sim.log" >&2; echo "the simulator failed" >&2; exit 1; }
  echo "hybrid: $(finished hybrid) ($(( $(date +%s) - start )) s)"
  cat "$OUT/hybrid-report.txt"
  curl -sf "$H/v1/jobs/hybrid/history" >"$OUT/hybrid-history.json"
  /usr/bin/python3 - "$OUT/hybrid-report.txt" "$OUT/hybrid-history.json" "$(accuracy dc-sync)" \
    "$(accuracy dc-diloco)" "$(accuracy hybrid)" <<'PY'
import json, re, sys
report = open(sys.argv[1]).read()
history = json.load(open(sys.argv[2]))
dc_sync, dc_diloco, hybrid = (float(a) for a in sys.argv[3:6])
num = lambda pattern: float(re.search(pattern, report).group(1))
fetched, pushed = num(r"bytes fetched (\d+)"), num(r"pushed (\d+)")
compute, counted_h = num(r"compute ([0-9.]+) vehicle-hours"), num(r"\(counted ([0-9.]+):")
utilisation = num(r"counted [0-9.]+: ([0-9.]+)% of")
preempted = num(r"preempted (\d+)\)")
rounds = history.get("rounds", [])
vehicle_updates = [sum(1 for a in r.get("accepted", []) if a != "datacenter-ring") for r in rounds]
ring_in = sum(1 for r in rounds if "datacenter-ring" in r.get("accepted", []))
params, batch, rate = 535818, 16, 1  # the spec's; --samples_per_second
steps = compute * 3600 * rate / batch  # the vehicles' inner steps, from their compute time
workers = 1 + max(vehicle_updates or [0])  # the ring and the most vehicles in one round
sync_per_step = 2 * 2 * (workers - 1) / workers * 4 * params  # sent and received
ratio = sync_per_step * steps / (fetched + pushed)
print(f"test accuracy: dc-sync {dc_sync:.2f}%, dc-diloco {dc_diloco:.2f}%, hybrid {hybrid:.2f}% "
      f"({hybrid - dc_sync:+.2f} points against dc-sync; target >= -1)")
print(f"rounds {len(rounds)}: vehicle updates per round mean {sum(vehicle_updates) / max(1, len(rounds)):.1f}, "
      f"max {max(vehicle_updates or [0])}; the ring's update in {ring_in}")
print(f"vehicle traffic: {(fetched + pushed) / 1e6:.0f} MB for {steps:.0f} inner steps "
      f"({(fetched + pushed) / steps / 1e3:.1f} kB per step); per-step synchronous training among "
      f"{workers} workers: {sync_per_step / 1e6:.2f} MB per step: {ratio:.0f}x less (target >= 100x)")
print(f"utilisation: {utilisation:.1f}% of the replicas' eligible time in rounds that counted "
      f"(target >= 80%); work lost: {compute - counted_h:.2f} of {compute:.2f} vehicle-hours "
      f"({100 * (compute - counted_h) / max(compute, 1e-9):.1f}%), {preempted:.0f} rounds preempted")
PY
  plot_day "$OUT/hybrid.csv" bench/fleet_hybrid_day.png 1000 "up to 50 replicas" \
    "A day of hybrid training: 1,000 vehicles, the ring and up to 50 vehicle replicas"
  deploy/local_cluster.sh down >/dev/null
fi
