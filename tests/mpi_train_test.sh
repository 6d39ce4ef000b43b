#!/usr/bin/env bash
# `mpirun -np N nightshift train --mpi` end to end under a real Open MPI:
# 2 ranks over TCP on loopback (Nightshift's ring over the MPI transport)
# and over shared memory (MPI_Allreduce itself) each train the synthetic
# example to the model `train --local` reaches, up to float summation
# order; only rank 0 prints and writes; a bad spec is refused once, with
# the field named, and nothing is written.
set -euo pipefail
NS="$1"
COMPARE="$2"
SPEC="$3"
T="${TEST_TMPDIR:-$(mktemp -d)}"
fail() { echo "FAIL: $*" >&2; exit 1; }
export OMPI_MCA_plm_rsh_agent=""  # no ssh: every rank is local
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2
        --mca btl_tcp_if_include lo)

"$NS" train --local "$SPEC" --out="$T/local" --threads=1 >"$T/local.txt" 2>"$T/local.err" \
  || { cat "$T/local.err"; fail "train --local exited non-zero"; }
local_acc=$(sed -n 's/^final test accuracy: \([0-9.]*\)%.*/\1/p' "$T/local.txt")

run() {  # NAME BTL ALLREDUCE [FLAGS...]
  local name="$1" btl="$2" allreduce="$3"
  shift 3
  "${MPIRUN[@]}" --mca btl "$btl" "$NS" train --mpi "$SPEC" --out="$T/$name" "$@" \
    >"$T/$name.txt" 2>"$T/$name.err" || { cat "$T/$name.err"; fail "$name: mpirun exited non-zero"; }
  [ "$(grep -c '^final test accuracy: ' "$T/$name.txt")" = 1 ] \
    || { cat "$T/$name.txt"; fail "$name: want one final accuracy line (rank 0's)"; }
  grep -q "2 MPI ranks summing over $allreduce" "$T/$name.err" \
    || { head -1 "$T/$name.err"; fail "$name: rank 0 did not report 2 ranks over $allreduce"; }
  grep -q " step 60/" "$T/$name.err" || fail "$name: no progress lines"
  [ -s "$T/$name/model.safetensors" ] || fail "$name: no model.safetensors"
  /usr/bin/python3 "$COMPARE" "$T/local/model.safetensors" "$T/$name/model.safetensors" 1e-3 \
    || fail "$name: the model differs from train --local's"
  acc=$(sed -n 's/^final test accuracy: \([0-9.]*\)%.*/\1/p' "$T/$name.txt")
  awk -v a="$acc" -v b="$local_acc" 'BEGIN { d = a - b; exit !(d < 0.5 && d > -0.5) }' \
    || fail "$name: accuracy $acc% against $local_acc% alone"
  echo "$name: $acc% (alone: $local_acc%)"
}
run ring-over-tcp tcp,self "the ring" --threads=1
run native-over-shm vader,self MPI_Allreduce --threads=1 --mpi_native_allreduce

# A bad spec: every rank exits 2, the field is named once, nothing written.
sed 's/lr: 0.02/lr: 0/' "$SPEC" >"$T/bad.textproto"
set +e
"${MPIRUN[@]}" --mca btl tcp,self "$NS" train --mpi "$T/bad.textproto" --out="$T/bad" \
  >"$T/bad.txt" 2>"$T/bad.err"
rc=$?
set -e
[ "$rc" != 0 ] || fail "a bad spec exited 0 under mpirun"
[ "$(grep -c 'optimizer.sgd.lr: must be > 0' "$T/bad.err")" = 1 ] \
  || { cat "$T/bad.err"; fail "the bad field is not named exactly once"; }
[ ! -e "$T/bad" ] || fail "a refused spec created its output directory"
echo "PASS"
