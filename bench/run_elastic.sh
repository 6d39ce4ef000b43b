#!/usr/bin/env bash
# Elastic membership (issue 9), on real processes. Each trial: a local
# cluster of 3 data-center workers (1 thread each) trains the
# Fashion-MNIST MLP (min_workers 1, max_workers 3), and once it trains
#   1. a worker chosen at random gets SIGKILL a random 0.2-2 s later;
#      the survivors go on in generation 2;
#   2. 2 s after they resume, a replacement worker starts: it joins as
#      generation 3 and receives the model from a member;
#   3. 2 s after it joins, the coordinator gets SIGKILL, stays down 3 s
#      and starts again on its --state_dir; it re-adopts the job.
# From the processes' own log stamps and the job's progress reports:
#   detection  kill -> a survivor's census names the lost rank
#   recovery   kill -> the survivors resume in generation 2
#   redone     steps between the survivors' last commit and the loss (the
#              job's reported step at the loss: a lower bound)
#   joiner     the replacement registers -> it resumes in the group
#   pause      the longest gap between progress reports (every 0.5 s)
#              while the coordinator is down, less the median gap
#   samples/s  mean of the progress reports in generations 1, 2 and 3
# Prints p50 and max over --trials, and draws trial 1's throughput over
# time with the three events marked (bench/elastic_timeline.png).
#
# usage: bench/run_elastic.sh [--trials=N] [--steps=N]
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=5
STEPS=16000
for a in "$@"; do
  case "$a" in
    --trials=*) TRIALS="${a#*=}" ;;
    --steps=*) STEPS="${a#*=}" ;;
    *) echo "usage: $0 [--trials=N] [--steps=N]" >&2; exit 2 ;;
  esac
done
bazel build -c opt //coordinator:nightshift-coordinator //worker:nightshift-worker //cli:nightshift >/dev/null 2>&1
NS=bazel-bin/cli/nightshift
OUT=$(mktemp -d)
sed -e "s/^epochs: .*/steps: $STEPS/" -e "s/^max_workers: .*/max_workers: 3/" \
    -e "s/^min_workers: .*/min_workers: 1/" -e "s/^checkpoint_interval_steps: .*//" \
    examples/fashion_mlp.textproto >"$OUT/spec.textproto"
py() { /usr/bin/python3 "$@"; }
field() { curl -sf "$H/v1/jobs/elastic" | py -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
wait_for() {  # wait_for CONDITION: every 50 ms, for at most 60 s
  for _ in $(seq 1 1200); do eval "$1" && return 0; sleep 0.05; done
  echo "timed out waiting for: $1" >&2; return 1
}

for ((t = 1; t <= TRIALS; t++)); do
  export NIGHTSHIFT_CLUSTER_DIR="$OUT/cluster-$t" NIGHTSHIFT_CONFIG_DIR="$OUT/cluster-$t-config"
  D="$NIGHTSHIFT_CLUSTER_DIR"
  deploy/local_cluster.sh up --datacenter 3 --threads 1 >/dev/null
  source deploy/cluster_env.sh
  C=$(cat "$D/coordinator")
  H=$(cat "$D/http")
  "$NS" submit "$OUT/spec.textproto" --id=elastic --coordinator="$C" >/dev/null
  wait_for '[ "$(field "int(d.get(\"progress\", {}).get(\"step\", 0))")" -ge 20 ]'
  sleep "$(py -c 'import random; print(round(random.uniform(0.2, 2.0), 2))')"
  victim=$(( RANDOM % 3 ))
  kill_time=$(date +%s.%N)
  kill -9 "$(cat "$D/dc-$victim.pid")"
  wait_for '[ "$(field "d[\"generation\"]")" -ge 2 ] && grep -q "generation 2 rank .*resuming" "$D"/dc-*.log'
  sleep 2
  bazel-bin/worker/nightshift-worker --coordinator="$C" --pool=datacenter --threads=1 \
    --listen=127.0.0.1:0 --name=dc-new --scratch_dir="$D/scratch" $(worker_flags) >"$D/dc-new.log" 2>&1 &
  echo $! >"$D/dc-new.pid"
  wait_for 'grep -q "(joined)" "$D/dc-new.log"'
  sleep 2
  coordinator_kill=$(date +%s.%N)
  kill -9 "$(cat "$D/coordinator.pid")"
  sleep 3  # the outage being measured
  bazel-bin/coordinator/nightshift-coordinator --listen="$C" --http="${H#*://}" \
    --state_dir="$D/state" $(coordinator_flags) >>"$D/coordinator.log" 2>&1 &
  echo $! >"$D/coordinator.pid"
  coordinator_back=$(date +%s.%N)
  ok=SUCCEEDED
  wait_for 'curl -sf "$H/healthz" >/dev/null'
  "$NS" watch elastic --coordinator="$C" >/dev/null 2>&1 || ok=FAILED
  curl -sf "$H/v1/jobs/elastic/history" >"$D/history.json"
  echo "$t $victim $kill_time $coordinator_kill $coordinator_back $ok" >>"$OUT/trials"
  deploy/local_cluster.sh down >/dev/null
done

py - "$OUT" bench/elastic_timeline.png <<'PY'
import datetime, glob, json, os, re, statistics, sys
out, png = sys.argv[1], sys.argv[2]
def stamp(line):  # glog: I20261201 20:43:20.128623 ...
    m = re.match(r"[IWE](\d{8}) (\d\d:\d\d:\d\d\.\d+)", line)
    if not m: return None
    dt = datetime.datetime.strptime(m.group(1) + " " + m.group(2), "%Y%m%d %H:%M:%S.%f")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()
def seconds(ts):  # proto JSON time: 2026-12-01T20:43:20.128623Z
    ts = ts.rstrip("Z")
    frac = ts.split(".")[1] if "." in ts else "0"
    base = datetime.datetime.strptime(ts.split(".")[0], "%Y-%m-%dT%H:%M:%S")
    return base.replace(tzinfo=datetime.timezone.utc).timestamp() + float("0." + frac)
det, rec, redone, joiner, pause, results = [], [], [], [], [], []
rates = {1: [], 2: [], 3: []}
timeline = None
for line in open(os.path.join(out, "trials")):
    t, victim, kill_time, ckill, cback, ok = line.split()
    kill_time, ckill, cback = float(kill_time), float(ckill), float(cback)
    d = os.path.join(out, f"cluster-{t}")
    survivors = [l for f in glob.glob(os.path.join(d, "dc-[0-9].log"))
                 if not f.endswith(f"dc-{victim}.log") for l in open(f)]
    lost = [stamp(l) for l in survivors if "lost peers" in l]
    resumed = [stamp(l) for l in survivors if re.search(r"generation 2 rank \d+: resuming", l)]
    if lost: det.append(min(lost) - kill_time)
    if resumed: rec.append(max(resumed) - kill_time)
    new = open(os.path.join(d, "dc-new.log")).read().splitlines()
    registered = [stamp(l) for l in new if "registered as" in l]
    joined = [stamp(l) for l in new if "(joined)" in l]
    if registered and joined: joiner.append(joined[0] - registered[0])
    history = json.load(open(os.path.join(d, "history.json")))
    for e in history.get("events", []):
        m = re.search(r"near step (\d+) \(the survivors' last commit: step (\d+)\)", e.get("reason", ""))
        if m: redone.append(max(0, int(m.group(1)) - int(m.group(2))))
    progress = [(seconds(p["time"]), p.get("samplesPerSecond", 0), p.get("workers", 0))
                for p in history.get("progress", []) if "time" in p]
    progress.sort()
    times = [p[0] for p in progress]
    gaps = [b - a for a, b in zip(times, times[1:])]
    during = [b - a for a, b in zip(times, times[1:]) if b > ckill and a < cback + 1]
    if gaps and during: pause.append(max(0.0, max(during) - statistics.median(gaps)))
    # Generations by the events' order: 1 until the kill, 2 until the join, 3 after.
    join_time = joined[0] if joined else float("inf")
    for when, rate, workers in progress:
        g = 1 if when < kill_time else 2 if when < join_time else 3
        if rate: rates[g].append(rate)
    results.append(ok)
    if timeline is None:
        timeline = (progress, kill_time, join_time, ckill, cback)
def show(name, xs, unit, target=""):
    if not xs: print(f"{name:<10} none measured"); return
    print(f"{name:<10} p50 {statistics.median(xs):.3f}{unit}  max {max(xs):.3f}{unit}  ({len(xs)} trials){target}")
show("detection", det, " s")
show("recovery", rec, " s", "  target p50 <= 1 s, p99 <= 2 s")
show("redone", redone, " steps", "  target <= one commit interval")
show("joiner", joiner, " s", "  (register -> training in the group)")
show("pause", pause, " s", "  target: none while the coordinator is down")
for g, label in ((1, "3 workers"), (2, "2 after the kill"), (3, "3 after the join")):
    if rates[g]: print(f"samples/s  generation {g} ({label}): {statistics.mean(rates[g]):.0f}")
print("jobs:", " ".join(results))
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib missing (deploy/setup.sh installs it): no picture"); sys.exit(0)
progress, kill_time, join_time, ckill, cback = timeline
t0 = progress[0][0]
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.plot([p[0] - t0 for p in progress], [p[1] for p in progress], marker=".", lw=1)
for x, label, color in ((kill_time, "worker SIGKILL", "red"), (join_time, "replacement joins", "green"),
                        (ckill, "coordinator SIGKILL", "purple"), (cback, "coordinator back", "purple")):
    ax.axvline(x - t0, color=color, ls="--", lw=1)
    ax.text(x - t0, ax.get_ylim()[1] * 0.97, " " + label, color=color, rotation=90, va="top", fontsize=8)
ax.set_xlabel("seconds since the first progress report")
ax.set_ylabel("samples/s (whole job)")
ax.set_title("Fashion-MNIST MLP on 3 workers, 2 cores: a kill, a join, a coordinator outage")
fig.tight_layout()
fig.savefig(png, dpi=110)
print("wrote", png)
PY
