#!/usr/bin/env bash
# Recovery from a lost worker (issue 9), on real processes: a local
# cluster of 3 data-center workers (1 thread each) trains the
# Fashion-MNIST MLP with min_workers 1; once the job runs, one worker
# chosen at random is killed with SIGKILL; the two survivors report it,
# the coordinator forms generation 2, and they resume from their last
# commit point. Per trial, from the processes' own log time stamps:
#   detection  kill -> a survivor's census names the lost rank
#   recovery   kill -> a survivor resumes training in generation 2
#   redone     steps between the last commit and the loss (the job's
#              reported step at the loss, an under-estimate of the true
#              step, so this is a lower bound)
# and whether the job ended SUCCEEDED. Prints p50 and max over --trials.
#
# usage: bench/run_elastic.sh [--trials=N] [--steps=N]
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=5
STEPS=20000
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
grep -q '^min_workers' "$OUT/spec.textproto" || echo "min_workers: 1" >>"$OUT/spec.textproto"
grep -q '^max_workers' "$OUT/spec.textproto" || echo "max_workers: 3" >>"$OUT/spec.textproto"

for ((t = 1; t <= TRIALS; t++)); do
  export NIGHTSHIFT_CLUSTER_DIR="$OUT/cluster-$t"
  deploy/local_cluster.sh up --datacenter 3 --threads 1 >/dev/null
  C=$(cat "$NIGHTSHIFT_CLUSTER_DIR/coordinator")
  H=$(cat "$NIGHTSHIFT_CLUSTER_DIR/http")
  "$NS" submit "$OUT/spec.textproto" --id=elastic --coordinator="$C" >/dev/null
  # Kill once the job trains (its first progress report: a loss during
  # start-up, before the first commit point, still fails the job), after
  # a random further 0.2-2 s.
  for _ in $(seq 1 400); do
    step=$(curl -sf "$H/v1/jobs/elastic" | python3 -c 'import json,sys; print(int(json.load(sys.stdin).get("progress", {}).get("step", 0)))')
    [ "$step" -ge 20 ] && break; sleep 0.05
  done
  sleep "$(python3 -c 'import random; print(round(random.uniform(0.2, 2.0), 2))')"
  victim=$(( RANDOM % 3 ))
  kill_time=$(date +%s.%N)
  kill -9 "$(cat "$NIGHTSHIFT_CLUSTER_DIR/dc-$victim.pid")"
  ok=SUCCEEDED
  "$NS" watch elastic --coordinator="$C" >/dev/null 2>&1 || ok=FAILED
  curl -sf "$H/v1/jobs/elastic/history" >"$NIGHTSHIFT_CLUSTER_DIR/history.json"
  echo "$t $victim $kill_time $ok" >>"$OUT/trials"
  deploy/local_cluster.sh down >/dev/null
done

python3 - "$OUT" <<'PY'
import datetime, glob, json, os, re, statistics, sys
out = sys.argv[1]
def stamp(line):  # glog: I20261201 20:43:20.128623 ...
    m = re.match(r"[IWE](\d{8}) (\d\d:\d\d:\d\d\.\d+)", line)
    if not m: return None
    dt = datetime.datetime.strptime(m.group(1) + " " + m.group(2), "%Y%m%d %H:%M:%S.%f")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()
det, rec, redone, results = [], [], [], []
for line in open(os.path.join(out, "trials")):
    t, victim, kill_time, ok = line.split()
    kill_time = float(kill_time)
    logs = [l for f in glob.glob(os.path.join(out, f"cluster-{t}", "dc-*.log"))
            if not f.endswith(f"dc-{victim}.log") for l in open(f)]
    lost = [stamp(l) for l in logs if "lost peers" in l]
    resumed = [stamp(l) for l in logs if "resuming at step" in l]
    history = json.load(open(os.path.join(out, f"cluster-{t}", "history.json")))
    for e in history.get("events", []):
        m = re.search(r"near step (\d+); resuming from the survivors' last commit \(step (\d+)",
                      e.get("reason", ""))
        if m: redone.append(int(m.group(1)) - int(m.group(2)))
    if lost: det.append(min(lost) - kill_time)
    if resumed: rec.append(max(resumed) - kill_time)
    results.append(ok)
def show(name, xs, unit):
    if not xs: print(f"{name:<10} none measured"); return
    print(f"{name:<10} p50 {statistics.median(xs):.3f}{unit}  max {max(xs):.3f}{unit}  ({len(xs)} trials)")
show("detection", det, " s")
show("recovery", rec, " s")
show("redone", redone, " steps")
print("jobs:", " ".join(results))
PY
