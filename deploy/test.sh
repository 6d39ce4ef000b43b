#!/usr/bin/env bash
# The project's test command: installs what is missing, builds and runs
# every test with Bazel, then checks the written rules (format, layering,
# thread-safety annotations: deploy/check_rules.sh). Ends with a plain
# "N passed, N failed" line that counts both.
set -uo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh || exit 1
log=$(mktemp)
bazel test //... "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
deploy/check_rules.sh 2>&1 | tee -a "$log"
rules_rc=${PIPESTATUS[0]}
passed=$(grep -cE '^(//[^ ]+ +(\(cached\) )?PASSED|RULE [a-z_]+: PASSED)' "$log")
failed=$(grep -cE '^(//[^ ]+ +(FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD)|RULE [a-z_]+: FAILED)' "$log")
rm -f "$log"
echo "${passed} passed, ${failed} failed"
[[ $rc -ne 0 ]] && exit "$rc"
exit "$rules_rc"
