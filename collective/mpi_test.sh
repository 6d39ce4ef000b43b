#!/usr/bin/env bash
# The MPI transport under a real mpirun: 3 ranks on this machine over TCP
# on loopback, then over shared memory; each rank checks its results.
set -euo pipefail
CHECK="$1"
export OMPI_MCA_plm_rsh_agent=""   # no ssh: everything is local
for btl in "tcp,self" "vader,self"; do
  echo "== btl $btl"
  mpirun --allow-run-as-root --oversubscribe -np 3 --bind-to none \
    --mca btl "$btl" --mca btl_tcp_if_include lo "$CHECK"
done
