#!/usr/bin/env bash
# The written rules, checked: run by deploy/test.sh after `bazel test`
# (which has built //...). Prints one "RULE name: PASSED|FAILED" line per
# rule and exits non-zero if any failed.
#
#  format         every .cc/.h outside third_party is as clang-format
#                 (the checked-in .clang-format) would write it
#  no_onednn      the coordinator binary links no oneDNN
#  thread_safety  the annotated packages compile under clang's
#                 -Wthread-safety with no warning, so ABSL_GUARDED_BY and
#                 friends are checked, not decorative
set -uo pipefail
cd "$(dirname "$0")/.."
failed=0
report() {  # name, rc
  if [[ $2 -eq 0 ]]; then echo "RULE $1: PASSED"; else echo "RULE $1: FAILED"; failed=1; fi
}

# format
files=$(git ls-files '*.cc' '*.h' | grep -v '^third_party/')
out=$(clang-format --dry-run $files 2>&1)
if [[ -n "$out" ]]; then
  echo "$out" | grep 'warning:' | sed 's/: warning:.*//' | sort -u | sed 's/^/unformatted: /' | head -20
  echo "fix with: clang-format -i \$(git ls-files '*.cc' '*.h' | grep -v ^third_party/)"
fi
report format $([[ -z "$out" ]] && echo 0 || echo 1)

# no_onednn
path=$(bazel query 'somepath(//coordinator:nightshift-coordinator, @system//:dnnl)' 2>/dev/null)
rc=$?
if [[ $rc -ne 0 ]]; then
  echo "bazel query failed"; report no_onednn 1
elif [[ -n "$path" ]]; then
  echo "the coordinator links oneDNN through:"; echo "$path"; report no_onednn 1
else
  report no_onednn 0
fi

# thread_safety: syntax-only clang passes over the sources of the packages
# whose classes share fields between threads, against the generated
# protobuf headers of the Bazel build. Left out: MPI (its headers are not
# on clang's path; its transport is single-threaded) and collective/wire.cc
# (no locks; Debian's clang 14 has no _Float16 on x86).
gen=$(bazel info bazel-bin 2>/dev/null)/proto
tsa_files=$(git ls-files 'worker/*.cc' 'coordinator/*.cc' 'collective/*.cc' 'collective/transport/*.cc' \
  'collective/transport/grpc/*.cc' 'collective/transport/shm/*.cc' 'collective/transport/local/*.cc' \
  'base/*.cc' 'security/*.cc' | grep -v '_test\.cc$\|_main\.cc$\|for_test\|/mpi/\|collective/wire\.cc')
rc=0
for f in $tsa_files; do
  if ! clang++ -std=c++17 -march=native -fsyntax-only -Wthread-safety -Werror=thread-safety \
      -Wno-unknown-warning-option $(pkg-config --cflags libevent_openssl) -I. -I"$gen" "$f" \
      2>/tmp/nightshift-tsa.$$; then
    echo "$f:"; grep -E 'error|warning' /tmp/nightshift-tsa.$$ | head -10
    rc=1
  fi
done
rm -f /tmp/nightshift-tsa.$$
report thread_safety $rc
exit $failed
