#!/usr/bin/env bash
# A simulated fleet over a compressed day against a real, secured
# coordinator (deploy/local_cluster.sh with no workers): 2,000 vehicles,
# each with the agent's own idle policy on its generated trace, a DiLoCo
# job on the edge pool taking up to 50 of them as replicas (the agent's
# round client, compute modelled at 20 samples/s: 160 virtual seconds a
# round), the day at 720x (two minutes):
#  1. every vehicle's eligibility, as the coordinator shows it (paged
#     ListWorkers, every 10 s), is the vehicle's own answer unless it
#     flipped within one heartbeat;
#  2. rounds are preempted, and no replica computes while its trace says
#     it is driving (beyond the agent's 200 ms preemption bound, here 144
#     virtual seconds);
#  3. rounds ran and counted; no heartbeat failed, at most 1% waited for
#     the one before;
#  4. the coordinator stays within the bounds scaled to 2,000 vehicles:
#     heartbeat p99 < 50 ms, resident memory < 128 MiB;
#  5. a trace CSV with a malformed row is refused naming the file and line.
set -euo pipefail
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
export NIGHTSHIFT_COORDINATOR_BIN=$(abs "$1") NIGHTSHIFT_WORKER_BIN=$(abs "$2") NIGHTSHIFT_CLI_BIN=$(abs "$3")
CLUSTER=$(abs "$4")
SIM=$(abs "$5")
SPEC=$(abs "$6")
T="${TEST_TMPDIR:-$(mktemp -d)}"
export NIGHTSHIFT_CLUSTER_DIR="$T/cluster" NIGHTSHIFT_CONFIG_DIR="$T/config"
NS="$NIGHTSHIFT_CLI_BIN"
D="$NIGHTSHIFT_CLUSTER_DIR"
fail() { echo "FAIL: $*" >&2; tail -n 20 "$D"/coordinator.log >&2 || true; exit 1; }
trap '"$CLUSTER" down >/dev/null 2>&1 || true' EXIT

"$CLUSTER" up --datacenter 0 --edge 0 >/dev/null
# The fleet's job: the synthetic MLP on the edge pool, up to 50 replicas.
sed -e 's/^min_workers: .*/min_workers: 1/' -e 's/^max_workers: .*/max_workers: 50/' \
  -e 's/^pools: WORKER_POOL_DATACENTER$//' -e 's/^steps: .*/steps: 100000000/' \
  -e 's/inner_steps: .*/inner_steps: 100/' -e 's/quorum: .*/quorum: 10/' "$SPEC" >"$T/fleet.textproto"
"$NS" submit "$T/fleet.textproto" --id=fleet >/dev/null
"$NS" token create --role=viewer --label="fleet sim test" >"$T/viewer.token" 2>/dev/null
# shellcheck disable=SC2046
"$SIM" --coordinator="$(cat "$D/coordinator")" $(tr '\n' ' ' <"$D/worker.flags") \
  --vehicles=2000 --start_hour=0 --speedup=720 --warmup=10s --measure=110s --reevaluate=10m \
  --samples_per_second=20 \
  --check_view_every=10s --viewer_token_file="$T/viewer.token" \
  --coordinator_pid="$(cat "$D/coordinator.pid")" >"$T/report.txt" 2>"$T/sim.log" \
  || { tail -20 "$T/sim.log"; fail "the simulator did not run"; }
cat "$T/report.txt"
field() { sed -n "$1" "$T/report.txt"; }
num_ok() { /usr/bin/python3 -c "import sys; sys.exit(not ($1))"; }

checks=$(field 's/.*view checks \([0-9]*\), mismatches.*/\1/p')
mismatches=$(field 's/.*mismatches \([0-9]*\)$/\1/p')
num_ok "$checks >= 20000" || fail "only $checks view checks"
[ "$mismatches" = 0 ] || fail "$mismatches vehicles' eligibility differs from the coordinator's view"
flips=$(field 's/.*eligibility flips \([0-9]*\),.*/\1/p')
num_ok "$flips >= 2000" || fail "only $flips eligibility flips in a day of 2,000 vehicles"
preempted=$(field 's/.*rounds trained [0-9]* (counted [0-9]*, preempted \([0-9]*\)).*/\1/p')
num_ok "$preempted >= 1" || fail "no round was preempted: the driving check below proves nothing"
overlap=$(field 's/.*compute inside a drive: at most \([0-9.]*\) virtual s.*/\1/p')
num_ok "$overlap <= 144" || fail "a replica computed $overlap virtual s into a drive"
counted=$(field 's/.*rounds trained [0-9]* (counted \([0-9]*\),.*/\1/p')
num_ok "$counted >= 100" || fail "only $counted rounds counted"
grep -q "errors none" "$T/report.txt" || fail "heartbeats failed: $(field '/errors/p')"
beats=$(field 's/^heartbeats \([0-9]*\) in the window.*/\1/p')
late=$(field 's/.*, late \([0-9]*\), errors.*/\1/p')
num_ok "$late * 100 <= $beats" || fail "$late heartbeats skipped (still out) of $beats"
p99=$(field '/^latency ms:/s/.* p99 \([0-9.]*\) .*/\1/p')
num_ok "$p99 < 50" || fail "heartbeat p99 $p99 ms"
rss=$(field 's/^coordinator RSS \([0-9]*\) MiB.*/\1/p')
num_ok "$rss < 128" || fail "coordinator RSS $rss MiB"

# 5. An operator's CSV with a bad row.
printf 'vehicle,at_seconds,ignition,gear,occupied,charging,charger_power_kw,state_of_charge,estimated_range_km,pack_temperature_c,cabin_temperature_c,compute_temperature_c,network,metered,data_budget_bytes\n' >"$T/bad.csv"
printf 'car-1,0,OFF,PARK,0,1,7.2,0.8,300,20,20,40,WIFI,0,0\n' >>"$T/bad.csv"
printf 'car-1,60,OFF,PARK,0,1,7.2,1.7,300,20,20,40,WIFI,0,0\n' >>"$T/bad.csv"
# shellcheck disable=SC2046
if "$SIM" --coordinator="$(cat "$D/coordinator")" $(tr '\n' ' ' <"$D/worker.flags") \
  --traces_csv="$T/bad.csv" >"$T/bad.txt" 2>&1; then fail "a malformed trace was accepted"; fi
grep -q "bad.csv:3: column state_of_charge: '1.7' is not in \[0, 1\]" "$T/bad.txt" \
  || fail "the refusal does not name the file and line: $(cat "$T/bad.txt")"
echo PASS
