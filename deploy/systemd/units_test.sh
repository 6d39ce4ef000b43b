#!/usr/bin/env bash
# The systemd units in deploy/systemd, checked with systemd's own tools:
# `systemd-analyze verify` (syntax, keys, the binary each ExecStart runs:
# here the ones Bazel built, put where the units expect them), every flag
# each ExecStart passes is one its binary defines (a misspelt flag would
# stop the daemon at start), `systemd-analyze security --offline` keeps
# each unit's exposure at or under 2.0 ("OK"), each runs as the dedicated
# user that nightshift.sysusers creates (checked with systemd-sysusers in
# a scratch root), and a broken unit is refused.
set -euo pipefail
COORDINATOR="$1"
WORKER="$2"
UNITS="$(cd "$(dirname "$3")" && pwd)"  # $3: any file of deploy/systemd
T="${TEST_TMPDIR:-$(mktemp -d)}"
fail() { echo "FAIL: $*" >&2; exit 1; }
mkdir -p "$T/units" "$T/bin" "$T/root/etc"
cp "$COORDINATOR" "$T/bin/nightshift-coordinator"
cp "$WORKER" "$T/bin/nightshift-worker"
for u in "$UNITS"/*.service; do
  sed "s|/usr/local/bin/|$T/bin/|" "$u" >"$T/units/$(basename "$u")"
done
cd "$T/units"

# 1. systemd accepts every unit without a single warning.
out=$(systemd-analyze verify ./*.service 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warned: $out"

for u in *.service; do
  # 2. The flags ExecStart passes exist in its binary.
  exec_line=$(sed -n '/^ExecStart=/,/[^\\]$/p' "$u" | tr -d '\\\n')
  bin=$(echo "$exec_line" | sed 's/^ExecStart=//' | awk '{print $1}')
  help=$("$bin" --helpfull 2>&1 || true)
  for flag in $(echo "$exec_line" | grep -o -- '--[a-z_]*' | sort -u); do
    grep -qE -- "^ +${flag} \(" <<<"$help" || fail "$u: $bin has no flag $flag"
  done
  # 3. Hardened: exposure at most 2.0 of 10, and the essentials present.
  systemd-analyze security --offline=yes --threshold=20 "./$u" >"$T/$u.security" 2>&1 \
    || { cat "$T/$u.security"; fail "$u: exposure above 2.0"; }
  for key in "User=nightshift" "NoNewPrivileges=yes" "ProtectSystem=strict" "Restart=" \
             "StateDirectory=" "CapabilityBoundingSet="; do
    grep -q "^$key" "$u" || fail "$u: no $key"
  done
  echo "$u: $(tail -1 "$T/$u.security" | sed 's/.*: //')"
done

# 4. The user the units run as is what nightshift.sysusers makes.
systemd-sysusers --root="$T/root" "$UNITS/nightshift.sysusers" \
  || fail "systemd-sysusers refused nightshift.sysusers"
grep -q "^nightshift:" "$T/root/etc/passwd" || fail "no nightshift user created"

# 5. A broken unit is refused (the check can fail).
sed 's/^ProtectSystem=strict/ProtectSystem=very/; s|^ExecStart=[^ ]*|ExecStart=/nonexistent/nightshift|' \
  nightshift-coordinator.service >broken.service
if systemd-analyze verify ./broken.service >/dev/null 2>&1; then fail "a broken unit verified"; fi
echo "PASS"
