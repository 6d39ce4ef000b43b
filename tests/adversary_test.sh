#!/usr/bin/env bash
# Attacks on a secured local cluster (the default: mutual TLS, tokens,
# enrolled workers) while a 2-worker job trains, from real clients: Python
# gRPC (tests/adversary.py: no token, a viewer doing admin calls, a worker
# acting for another, a member uploading corrupt or foreign tensors,
# oversized and malformed messages, a flood, another CA's certificate, a
# Peer stream without the generation's key), curl and the CLI. Every
# attempt is refused with the right code; afterwards the coordinator's
# jobs, workers and checkpoints are as they were, and the job ends
# SUCCEEDED.
set -euo pipefail
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
export NIGHTSHIFT_COORDINATOR_BIN=$(abs "$1") NIGHTSHIFT_WORKER_BIN=$(abs "$2") NIGHTSHIFT_CLI_BIN=$(abs "$3")
CLUSTER=$(abs "$4")
SPEC=$(abs "$5")
ADVERSARY=$(abs "$6")
PROTOS=$(abs "$7")  # proto/nightshift/v1/coordinator.proto: its root is three folders up
CERTS="$(dirname "$CLUSTER")/certs.sh"
T="${TEST_TMPDIR:-$(mktemp -d)}"
export NIGHTSHIFT_CLUSTER_DIR="$T/cluster" NIGHTSHIFT_CONFIG_DIR="$T/config"
D="$NIGHTSHIFT_CLUSTER_DIR"
NS="$NIGHTSHIFT_CLI_BIN"
fail() { echo "FAIL: $*" >&2; tail -n 20 "$D"/*.log >&2 || true; exit 1; }
trap '"$CLUSTER" down >/dev/null 2>&1 || true' EXIT

"$CLUSTER" up --datacenter 2 --threads 1
source "$(dirname "$0")/../deploy/cluster_env.sh"
C=$(cat "$D/coordinator")
H=$(cat "$D/http")
"$CERTS" --dir="$T/other" intruder >/dev/null

# Python stubs from the API's own protos.
root=$(dirname "$(dirname "$(dirname "$PROTOS")")")
mkdir -p "$T/stubs"
protoc -I"$root" --python_out="$T/stubs" --grpc_python_out="$T/stubs" \
  --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin "$root"/nightshift/v1/*.proto
touch "$T/stubs/nightshift/__init__.py" "$T/stubs/nightshift/v1/__init__.py"

(sed -e "s/^min_workers: .*/min_workers: 2/" -e "s/^max_workers: .*/max_workers: 2/" \
     -e "s/^epochs: .*/steps: 100000/" -e "s/units: 64/units: 1024/" "$SPEC"
 echo "checkpoint_interval_steps: 10000") >"$T/target.textproto"
"$NS" submit "$T/target.textproto" --id=target >/dev/null
for _ in $(seq 1 300); do
  curl -sf "$H/v1/jobs/target" | grep -q '"checkpoints"' && break
  sleep 0.1
done
snapshot() {  # the state an attack must not change
  echo "jobs: $("$NS" list | awk 'NR > 1 { print $1, ($1 == "target" ? "-" : $2) }' | tr '\n' ' ')"
  echo "workers: $("$NS" workers | awk 'NR > 1 && $2 != "intruder" { print $2 }' | sort | tr '\n' ' ')"
}
before=$(snapshot)

echo "== gRPC from Python"
/usr/bin/python3 "$ADVERSARY" "$T/stubs" "$D" "$NIGHTSHIFT_CONFIG_DIR" "$T/other" target \
  || fail "an attack over gRPC was not refused as it should be"
curl -sf "$H/v1/jobs/target" | grep -q JOB_STATE_RUNNING || fail "the job ended before the attacks did: lengthen it"

echo "== HTTP with curl"
code() { command curl -s -o /dev/null -w '%{http_code}' --cacert "$D/tls/ca.pem" "$@"; }
viewer=$("$NS" token create --role=viewer 2>/dev/null)
join=$(cat "$D/worker.token")
[ "$(code "$H/v1/jobs")" = 401 ] || fail "/v1/jobs without a token"
[ "$(code -H "Authorization: Bearer nst_nope" "$H/v1/workers")" = 401 ] || fail "a made-up token"
[ "$(code -H "Authorization: Bearer $join" "$H/v1/jobs")" = 403 ] || fail "a worker token on the status API"
[ "$(code -H "Authorization: Bearer $viewer" "$H/v1/jobs")" = 200 ] || fail "a viewer token"
[ "$(code -H "Authorization: Bearer $viewer" "$H/metrics")" = 200 ] || fail "/metrics for a viewer"
[ "$(code "$H/healthz")" = 200 ] || fail "/healthz needs no token"
[ "$(code -H "Authorization: Bearer $viewer" "$H/v1/jobs/..%2F..%2Fetc%2Fpasswd")" = 404 ] || fail "a path escape"
[ "$(code -H "Authorization: Bearer $viewer" "$H/v1/jobs?page_token=%ff%00&x=$(head -c 3000 /dev/zero | tr '\0' a)")" = 400 ] \
  || fail "a junk query"
head -c 1000000 /dev/zero >"$T/big"
[ "$(code -X POST -H "Authorization: Bearer $viewer" --data-binary @"$T/big" "$H/v1/jobs")" = 413 ] \
  || fail "a 1 MB POST to a read-only API"
if command curl -sf --cacert "$T/other/ca.pem" "$H/healthz" >/dev/null 2>&1; then
  fail "curl trusted a server certificate from another CA"
fi
if command curl -sf "http://${H#*://}/healthz" >/dev/null 2>&1; then fail "plaintext HTTP answered"; fi
echo "ok   401 / 403 / 200 / 404 as they should be"

echo "== the CLI"
mkdir -p "$T/empty"
if NIGHTSHIFT_CONFIG_DIR="$T/empty" "$NS" list --coordinator="$C" --tls_ca="$D/tls/ca.pem" \
    --tls_cert="$D/tls/client.pem" --tls_key="$D/tls/client.key" 2>"$T/err.txt"; then
  fail "the CLI listed jobs without a token"
fi
grep -q "no token" "$T/err.txt" || fail "the CLI did not say it has no token: $(cat "$T/err.txt")"
if "$NS" cancel target --token="$viewer" 2>"$T/err.txt"; then fail "a viewer cancelled a job"; fi
grep -q "PERMISSION_DENIED" "$T/err.txt" || fail "viewer cancel: $(cat "$T/err.txt")"
if NIGHTSHIFT_CONFIG_DIR="$T/empty" "$NS" list --token="$viewer" 2>"$T/err.txt"; then
  fail "the CLI dialled without TLS files"
fi
grep -q "needs TLS" "$T/err.txt" || fail "no TLS files: $(cat "$T/err.txt")"
echo "ok   refused, each saying why"

echo "== afterwards"
kill -0 "$(cat "$D/coordinator.pid")" || fail "the coordinator died"
after=$(snapshot)
[ "$after" = "$before" ] || fail "the state changed: before [$before] after [$after]"
"$NS" watch target >/dev/null 2>&1 || fail "the job did not succeed: $(curl -sf "$H/v1/jobs/target")"
bad=$(curl -sf "$H/v1/jobs/target" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
print([c["step"] for c in d.get("checkpoints", []) if int(c["step"]) % 10000])')
[ "$bad" = "[]" ] || fail "checkpoints stored from refused uploads: $bad"
intruder=$(curl -sf "$H/v1/workers" | /usr/bin/python3 -c '
import json, sys
print([(w["state"], w["jobId"]) for w in json.load(sys.stdin)["workers"] if w["name"] == "intruder"])')
case "$intruder" in *"'')]") ;; *) fail "the intruder worker got work: $intruder" ;; esac
grep -q "refused an upload from" "$D/coordinator.log" || fail "the coordinator did not log the refused uploads"
echo "ok   state unchanged ($after), target SUCCEEDED"
echo PASS
