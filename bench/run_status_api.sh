#!/usr/bin/env bash
# The HTTP status API under load, measured with wrk (Debian's 4.1) against a
# secured local cluster (HTTPS, a viewer token), all on this machine:
#   1. one keep-alive connection, idle coordinator: latency per request
#      (a Nagle/delayed-ACK stall would show as ~40 ms);
#   2. 64 keep-alive connections, idle coordinator: requests/s and p99
#      (target >= 5,000/s, p99 <= 20 ms);
#   3. a 2-worker job training: its steps/s without load and with 64
#      connections paced to ~100 requests/s (wrk's delay()), alternating
#      --rounds times; p99 (target <= 100 ms), throughput drop (target <=
#      5%), leases expired (must stay 0), and how soon the API answers
#      after each load ends;
#   4. gRPC status calls (Coordinator.ListJobs, mutual TLS, a viewer
#      token; bench/grpc_status_load.py): as fast as 16 callers go on the
#      idle coordinator, and paced to ~100 calls/s from 64 callers while
#      the job trains, in the same rounds as 3 (job throughput, p99).
# /v1/jobs lists 20 finished jobs throughout (each reply ~40 KB).
#
# usage: bench/run_status_api.sh [--rounds=R] [--seconds=S]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3
SECONDS_PER_RUN=10
for a in "$@"; do
  case "$a" in
    --rounds=*) ROUNDS="${a#*=}" ;;
    --seconds=*) SECONDS_PER_RUN="${a#*=}" ;;
    *) echo "usage: $0 [--rounds=R] [--seconds=S]" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is not installed: deploy/setup.sh" >&2; exit 1; }
bazel build -c opt //coordinator:nightshift-coordinator //worker:nightshift-worker //cli:nightshift >/dev/null 2>&1
OUT=$(mktemp -d)
export NIGHTSHIFT_CLUSTER_DIR="$OUT/cluster" NIGHTSHIFT_CONFIG_DIR="$OUT/config"
NS=bazel-bin/cli/nightshift
trap 'deploy/local_cluster.sh down >/dev/null 2>&1 || true' EXIT
deploy/local_cluster.sh up --datacenter 2 --threads 1 >/dev/null
source deploy/cluster_env.sh
H=$(cat "$NIGHTSHIFT_CLUSTER_DIR/http")
VIEWER=$("$NS" token create --role=viewer --label=bench 2>/dev/null)
py() { /usr/bin/python3 "$@"; }
mkdir -p "$OUT/stubs"
protoc -Iproto --python_out="$OUT/stubs" --grpc_python_out="$OUT/stubs" \
  --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin proto/nightshift/v1/*.proto
touch "$OUT/stubs/nightshift/__init__.py" "$OUT/stubs/nightshift/v1/__init__.py"
TLS=$NIGHTSHIFT_CLUSTER_DIR/tls
grpc_load() {  # CONNECTIONS SECONDS RATE -> "calls/s p50_ms p99_ms errors cpu_seconds"
  py bench/grpc_status_load.py "$OUT/stubs" "$(cat "$NIGHTSHIFT_CLUSTER_DIR/coordinator")" \
    "$TLS/ca.pem" "$TLS/client.pem" "$TLS/client.key" "$VIEWER" "$@"
}

# 20 short jobs, so that /v1/jobs has something to say.
sed -e "s/^epochs: .*/steps: 20/" tests/e2e_synthetic.textproto >"$OUT/short.textproto"
for i in $(seq 1 20); do "$NS" submit "$OUT/short.textproto" --id="short-$i" >/dev/null; done
"$NS" watch short-20 >/dev/null 2>&1
for i in $(seq 1 20); do "$NS" watch "short-$i" >/dev/null 2>&1; done

cat >"$OUT/auth.lua" <<EOF
wrk.headers["Authorization"] = "Bearer $VIEWER"
EOF
cat >"$OUT/paced.lua" <<EOF
wrk.headers["Authorization"] = "Bearer $VIEWER"
-- 64 connections, each waiting 640 ms between requests: ~100 requests/s.
function delay() return 640 end
EOF
# wrk OUTPUT -> "requests/s p50_ms p99_ms timeouts"
summary() {
  py - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    m = re.search(r"^\s*%s\s+([\d.]+)(us|ms|s)\s*$" % label, text, re.M)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
t = re.search(r"timeout (\d+)", text)
print("%.0f %.2f %.2f %s" % (rps, ms("50%"), ms("99%"), t.group(1) if t else "0"))
PY
}
# CPU seconds (user + system) the coordinator has used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$(cat "$NIGHTSHIFT_CLUSTER_DIR/coordinator.pid")/stat"; }
step() { curl -sf "$H/v1/jobs/$1" | py -c 'import json,sys; print(json.load(sys.stdin).get("progress", {}).get("step", 0))'; }
expired() { curl -sf "$H/metrics" | awk '$1 == "nightshift_leases_expired_total" { print $2 }'; }

wrk -t1 -c1 -d"${SECONDS_PER_RUN}s" --latency -s "$OUT/auth.lua" "$H/v1/jobs" >"$OUT/one.txt"
read -r one_rps one_p50 one_p99 one_to < <(summary "$OUT/one.txt")
wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" --latency -s "$OUT/auth.lua" "$H/v1/jobs" >"$OUT/idle.txt"
read -r idle_rps idle_p50 idle_p99 idle_to < <(summary "$OUT/idle.txt")
read -r g_rps g_p50 g_p99 g_err _ < <(grpc_load 16 "$SECONDS_PER_RUN" 0)

# A long 2-worker job: steps/s over each window, without and with load.
sed -e "s/^min_workers: .*/min_workers: 2/" -e "s/^max_workers: .*/max_workers: 2/" \
    -e "s/^epochs: .*/steps: 1000000/" -e "s/^checkpoint_interval_steps: .*//" \
    examples/fashion_mlp.textproto >"$OUT/long.textproto"
"$NS" submit "$OUT/long.textproto" --id=long >/dev/null
for _ in $(seq 1 600); do [ "$(step long)" -ge 200 ] && break; sleep 0.1; done
expired_before=$(expired)
: >"$OUT/rounds"
for ((r = 1; r <= ROUNDS; r++)); do
  s0=$(step long); t0=$(date +%s.%N); c0=$(cpu)
  sleep "$SECONDS_PER_RUN"
  s1=$(step long); t1=$(date +%s.%N); c1=$(cpu)
  wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" --timeout 2s --latency -s "$OUT/paced.lua" "$H/v1/jobs" >"$OUT/load-$r.txt"
  s2=$(step long); t2=$(date +%s.%N); c2=$(cpu)
  after=$(command curl -s -o /dev/null -w '%{time_total}' --cacert "$NIGHTSHIFT_CLUSTER_DIR/tls/ca.pem" \
    -H "Authorization: Bearer $VIEWER" "$H/v1/jobs")
  read -r rps p50 p99 to < <(summary "$OUT/load-$r.txt")
  read -r grps gp50 gp99 gerr gcpu < <(grpc_load 64 "$SECONDS_PER_RUN" 100)
  s3=$(step long); t3=$(date +%s.%N); c3=$(cpu)
  echo "$r $(py -c "print(($s1-$s0)/($t1-$t0), ($s2-$s1)/($t2-$t1), ($s3-$s2)/($t3-$t2))") $rps $p50 $p99 $to $after $grps $gp50 $gp99 $gerr" \
    "$(py -c "print(100*($c1-$c0)/($t1-$t0), 100*($c2-$c1)/($t2-$t1), 100*($c3-$c2)/($t3-$t2), 100*$gcpu/($t3-$t2))")" >>"$OUT/rounds"
done
expired_after=$(expired)
"$NS" cancel long >/dev/null

echo "status API (HTTPS, viewer token), /v1/jobs with 20 jobs; wrk 4.1 on the same 2 cores"
printf "  1 keep-alive connection, idle:   %6.0f requests/s, p50 %.2f ms, p99 %.2f ms\n" "$one_rps" "$one_p50" "$one_p99"
printf "  64 keep-alive connections, idle: %6.0f requests/s, p50 %.2f ms, p99 %.2f ms, timeouts %s  (target >= 5000/s, p99 <= 20 ms)\n" \
  "$idle_rps" "$idle_p50" "$idle_p99" "$idle_to"
printf "  gRPC ListJobs, 16 callers, idle: %6.0f calls/s, p50 %.2f ms, p99 %.2f ms, errors %s\n" \
  "$g_rps" "$g_p50" "$g_p99" "$g_err"
echo "  while a 2-worker job trains (64 connections paced to ~100 requests/s; then 64 gRPC callers paced to ~100 calls/s):"
py - "$OUT/rounds" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
drops, gdrops = [], []
for r, quiet, loaded, gloaded, rps, p50, p99, to, after, grps, gp50, gp99, gerr, cq, ch, cg, lg in rows:
    drop = 1 - float(loaded) / float(quiet)
    gdrop = 1 - float(gloaded) / float(quiet)
    drops.append(drop)
    gdrops.append(gdrop)
    print("    round %s: job %.1f steps/s quiet; HTTP: %.1f (%+.1f%%), %s requests/s, p50 %s ms, p99 %s ms, timeouts %s, first reply after the load %.1f ms; gRPC: %.1f (%+.1f%%), %s calls/s, p50 %s ms, p99 %s ms, errors %s"
          % (r, float(quiet), float(loaded), -100 * drop, rps, p50, p99, to, 1000 * float(after),
             float(gloaded), -100 * gdrop, grps, gp50, gp99, gerr))
    print("      coordinator CPU: %.1f%% of a core quiet, %.1f%% under HTTP, %.1f%% under gRPC; the gRPC load generator itself %.1f%%"
          % (float(cq), float(ch), float(cg), float(lg)))
print("    HTTP: mean throughput drop %.1f%% (target <= 5%%), worst p99 %.2f ms (target <= 100 ms)"
      % (100 * sum(drops) / len(drops), max(float(x[6]) for x in rows)))
print("    gRPC: mean throughput drop %.1f%%, worst p99 %.2f ms"
      % (100 * sum(gdrops) / len(gdrops), max(float(x[11]) for x in rows)))
PY
echo "  leases expired during the loaded rounds: $((expired_after - expired_before)) (must be 0)"
