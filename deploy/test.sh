#!/usr/bin/env bash
# The project's test command: installs what is missing, builds and runs
# every test with Bazel, then checks the written rules (format, layering,
# thread-safety annotations: deploy/check_rules.sh), and runs every fuzz
# target briefly (deploy/fuzz.sh, 10 s each). Ends with a plain
# "N passed, N failed" line that counts all three.
set -uo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh || exit 1
log=$(mktemp)
bazel test //... "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
deploy/check_rules.sh 2>&1 | tee -a "$log"
rules_rc=${PIPESTATUS[0]}
deploy/fuzz.sh --seconds=10 2>/dev/null | tee -a "$log"
fuzz_rc=${PIPESTATUS[0]}
passed=$(grep -cE '^(//[^ ]+ +(\(cached\) )?PASSED|(RULE|FUZZ) [a-z_]+: PASSED)' "$log")
failed=$(grep -cE '^(//[^ ]+ +(FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD)|(RULE|FUZZ) [a-z_]+: FAILED)' "$log")
rm -f "$log"
echo "${passed} passed, ${failed} failed"
[[ $rc -ne 0 ]] && exit "$rc"
[[ $rules_rc -ne 0 ]] && exit "$rules_rc"
exit "$fuzz_rc"
