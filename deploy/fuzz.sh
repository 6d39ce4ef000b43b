#!/usr/bin/env bash
# Builds the libFuzzer targets (--config=fuzz: clang 14, ASan + UBSan) and
# runs each on a copy of its checked-in corpus.
#
#   deploy/fuzz.sh [--seconds=S] [--runs=N] [TARGET...]
#
# Default: every target for 10 s (what CI runs). Long runs: --runs=10000000
# (README, "Fuzzing"). New inputs that grow coverage stay in the copy, not
# in the checked-in corpus; a crash leaves its input under $FUZZ_OUT
# (default a temporary folder) and fails the script. Prints one line per
# target: "FUZZ name: PASSED|FAILED (runs, seconds)".
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=10 RUNS=""
targets=()
for a in "$@"; do
  case "$a" in
    --seconds=*) SECONDS_EACH="${a#*=}" ;;
    --runs=*) RUNS="${a#*=}" ;;
    -*) echo "usage: $0 [--seconds=S] [--runs=N] [TARGET...]" >&2; exit 2 ;;
    *) targets+=("$a") ;;
  esac
done
ALL=(
  //spec:job_spec_fuzzer:spec/testdata/job_spec_corpus
  //data:idx_fuzzer:data/testdata/idx_corpus
  //checkpoint:safetensors_fuzzer:checkpoint/testdata/safetensors_corpus
  //collective/transport/grpc:peer_chunk_fuzzer:collective/transport/grpc/testdata/peer_chunk_corpus
  //coordinator:coordinator_fuzzer:coordinator/testdata/coordinator_corpus
  //coordinator:http_api_fuzzer:coordinator/testdata/http_api_corpus
  //collective:delta_codec_fuzzer:collective/testdata/delta_codec_corpus
)
selected=()
for entry in "${ALL[@]}"; do
  name=${entry%%:*}; rest=${entry#*:}; name="$name:${rest%%:*}"
  if [ ${#targets[@]} -eq 0 ] || printf '%s\n' "${targets[@]}" | grep -qx "$name"; then selected+=("$entry"); fi
done
labels=()
for entry in "${selected[@]}"; do rest=${entry#*:}; labels+=("${entry%%:*}:${rest%%:*}"); done
bazel build --config=fuzz "${labels[@]}" >&2 || { echo "FUZZ build: FAILED"; exit 1; }
bin=$(bazel info --config=fuzz bazel-bin 2>/dev/null)
OUT="${FUZZ_OUT:-$(mktemp -d)}"
rc=0
for entry in "${selected[@]}"; do
  rest=${entry#*:}; label="${entry%%:*}:${rest%%:*}"; corpus=${rest#*:}
  name=${label##*:}; pkg=${label#//}; pkg=${pkg%%:*}
  work="$OUT/$name"; mkdir -p "$work/corpus" "$work/crashes"
  cp "$corpus"/* "$work/corpus/"
  limit=(-max_total_time="$SECONDS_EACH")
  [ -n "$RUNS" ] && limit=(-runs="$RUNS")
  start=$(date +%s)
  "$bin/$pkg/$name" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/crashes/" "$work/corpus" >"$work/log" 2>&1
  status=$?
  runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$work/log")
  if [ $status -eq 0 ]; then
    echo "FUZZ $name: PASSED (${runs:-?} runs in $(( $(date +%s) - start )) s)"
  else
    echo "FUZZ $name: FAILED (see $work/log and $work/crashes)"
    tail -n 30 "$work/log" >&2
    rc=1
  fi
done
exit $rc
