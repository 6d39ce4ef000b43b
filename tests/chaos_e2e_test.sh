#!/usr/bin/env bash
# Chaos on a real local cluster: one job on 3 data-center workers while a
# driver, step by step of the job's progress,
#  - SIGKILLs a random worker and starts a replacement (twice),
#  - SIGSTOPs a random worker past its lease, then SIGCONTs it (it must be
#    fenced, and rejoin without disturbing the new ring),
#  - SIGKILLs the coordinator and starts it again on its --state_dir.
# The job must end SUCCEEDED with the model of a clean run on one worker
# (1e-4, the 3-vs-1 tolerance). The victims are drawn from a fixed seed
# (CHAOS_SEED), and every wait is on a state, so the test passes every time
# or names the step that did not happen.
set -euo pipefail
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
export NIGHTSHIFT_COORDINATOR_BIN=$(abs "$1") NIGHTSHIFT_WORKER_BIN=$(abs "$2") NIGHTSHIFT_CLI_BIN=$(abs "$3")
CLUSTER=$(abs "$4")
SPEC=$(abs "$5")
READER=$(abs "$6")
T="${TEST_TMPDIR:-$(mktemp -d)}"
export NIGHTSHIFT_CLUSTER_DIR="$T/cluster" NIGHTSHIFT_CONFIG_DIR="$T/config"
D="$NIGHTSHIFT_CLUSTER_DIR"
NS="$NIGHTSHIFT_CLI_BIN"
RANDOM=${CHAOS_SEED:-9}
fail() { echo "FAIL: $*" >&2; tail -n 15 "$D"/*.log >&2 || true; exit 1; }
trap '"$CLUSTER" down >/dev/null 2>&1 || true' EXIT

"$CLUSTER" up --datacenter 3 --threads 1
C=$(cat "$D/coordinator")
H=$(cat "$D/http")
source "$(dirname "$0")/elastic_helpers.sh"

live=(dc-0 dc-1 dc-2)  # the workers now running
next=3                 # the next replacement's number
random_live() { echo "${live[$((RANDOM % ${#live[@]}))]}"; }
forget() { local w; local kept=(); for w in "${live[@]}"; do [ "$w" = "$1" ] || kept+=("$w"); done; live=("${kept[@]}"); }
# after_steps N: waits until the job has trained N more steps.
after_steps() {
  local target=$(( $(job chaos 'int(d.get("progress", {}).get("step", 0))') + $1 ))
  until_true 60 step_at_least chaos "$target" || fail "chaos stalled before step $target: $(job chaos 'd["reason"]')"
}
kill_one() {
  local victim; victim=$(random_live)
  echo "SIGKILL $victim at step $(job chaos 'd["progress"]["step"]')"
  kill -9 "$(pid "$victim")"; forget "$victim"
  start_worker "dc-$next"; live+=("dc-$next"); next=$((next + 1))
}

elastic_spec 1 3 2500 >"$T/chaos.textproto"
"$NS" submit "$T/chaos.textproto" --id=chaos --coordinator="$C" >/dev/null
until_true 30 workers_are chaos 3 || fail "chaos did not start on 3"
after_steps 100
kill_one
until_true 60 workers_are chaos 3 || fail "the replacement did not join: $(job chaos 'd["reason"]')"
after_steps 100
stopped=$(random_live)
echo "SIGSTOP $stopped at step $(job chaos 'd["progress"]["step"]')"
kill -STOP "$(pid "$stopped")"
until_true 30 bash -c "curl -sf '$H/v1/jobs/chaos/history' | grep -q '$stopped (rank [0-9]) lost its lease'" \
  || { kill -CONT "$(pid "$stopped")"; fail "$stopped was not fenced"; }
kill -CONT "$(pid "$stopped")"
echo "SIGCONT $stopped"
until_true 60 workers_are chaos 3 || fail "$stopped did not rejoin: $(job chaos 'd["reason"]')"
after_steps 100
echo "SIGKILL the coordinator at step $(job chaos 'd["progress"]["step"]')"
kill_and_restart_coordinator "${live[0]}"
after_steps 100
kill_one
"$NS" watch chaos --coordinator="$C" >/dev/null 2>&1 || fail "chaos did not succeed: $(job chaos 'd["reason"]')"
echo "chaos: generation $(job chaos 'd["generation"]'), $(metric nightshift_job_steps_redone_total) steps redone since the restart"
curl -sf "$H/v1/jobs/chaos/history" | json '"\n".join(e["reason"] for e in d["events"])'
elastic_spec 1 1 2500 >"$T/clean.textproto"
"$NS" submit "$T/clean.textproto" --id=clean --watch --coordinator="$C" >/dev/null 2>&1 || fail "clean"
export_and_compare chaos clean
echo PASS
