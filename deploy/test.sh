#!/usr/bin/env bash
# The project's test command: installs what is missing, builds and runs
# every test with Bazel, then checks the written rules (format, layering,
# thread-safety annotations: deploy/check_rules.sh), runs the collective,
# coordinator and worker tests again under ASan+UBSan (--config=asan;
# their lines read asan://...) and under TSan (--config=tsan, with the
# suppressions of deploy/tsan.supp; tsan://...), and every fuzz target briefly
# (deploy/fuzz.sh, 10 s each). Ends with a plain "N passed, N failed" line
# that counts them all.
set -uo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh || exit 1
log=$(mktemp)
bazel test //... "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
deploy/check_rules.sh 2>&1 | tee -a "$log"
rules_rc=${PIPESTATUS[0]}
bazel test --config=asan //collective/... //coordinator:all //worker:all 2>&1 |
  sed 's|^//|asan://|' | tee -a "$log"
asan_rc=${PIPESTATUS[0]}
tsan_options="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/deploy/tsan.supp"
bazel test --config=tsan --test_env=TSAN_OPTIONS="$tsan_options" \
  //base:tsan_absl_sync_test //collective/... //coordinator:all //worker:all 2>&1 |
  sed 's|^//|tsan://|' | tee -a "$log"
tsan_rc=${PIPESTATUS[0]}
deploy/fuzz.sh --seconds=10 2>/dev/null | tee -a "$log"
fuzz_rc=${PIPESTATUS[0]}
passed=$(grep -cE '^((asan:|tsan:)?//[^ ]+ +(\(cached\) )?PASSED|(RULE|FUZZ) [a-z_]+: PASSED)' "$log")
failed=$(grep -cE '^((asan:|tsan:)?//[^ ]+ +(FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD)|(RULE|FUZZ) [a-z_]+: FAILED)' "$log")
rm -f "$log"
echo "${passed} passed, ${failed} failed"
[[ $rc -ne 0 ]] && exit "$rc"
[[ $rules_rc -ne 0 ]] && exit "$rules_rc"
[[ $asan_rc -ne 0 ]] && exit "$asan_rc"
[[ $tsan_rc -ne 0 ]] && exit "$tsan_rc"
exit "$fuzz_rc"
