#!/usr/bin/env bash
# All-reduce side by side, one process per rank on loopback, 4 KiB..64 MiB
# float32, 2 and 4 ranks:
#   nightshift_socket_ring Nightshift's ring over data sockets (gRPC for
#                          control only): what workers on different hosts
#                          run; _tls with mutual TLS, their default
#   nightshift_grpc_ring   Nightshift's ring with the data over gRPC too
#   nightshift_shm_ring    the same with shared-memory rings between local
#                          ranks (what worker daemons on one machine use)
#   nightshift_mpi_ring    Nightshift's ring over MPI point-to-point (TCP)
#   mpi_allreduce_tcp      Nightshift's pass-through to MPI_Allreduce (TCP)
#   mpi_raw_tcp[_tuned]    a plain MPI program calling MPI_Allreduce over
#                          TCP, as is and with glibc's tunables
#   mpi_allreduce_shm      Open MPI's MPI_Allreduce, shared memory (vader)
#   gloo                   torch.distributed all_reduce, gloo backend, run
#                          as bench/peer_env.sh says (printed first)
# Prints latency and bus bandwidth (2(n-1)/n x bytes / time) per size and
# the ratios the targets are stated in. The MPI runs use the same binary,
# which keeps large blocks in glibc's heap (base/allocator.h) -- Open MPI's
# best TCP figure needs exactly that.
#
# usage: bench/run_allreduce.sh [--seconds=S] [--ranks="2 4"]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=1
RANKS="2 4"
for a in "$@"; do
  case "$a" in
    --seconds=*) SECS="${a#*=}" ;;
    --ranks=*) RANKS="${a#*=}" ;;
  esac
done
TARGETS=(//bench:allreduce_bench //bench:mpi_allreduce_raw)
bazel build -c opt "${TARGETS[@]}" >/dev/null 2>&1 || bazel build -c opt "${TARGETS[@]}"
B=bazel-bin/bench/allreduce_bench
RAW=bazel-bin/bench/mpi_allreduce_raw
OUT=$(mktemp -d)
source bench/peer_env.sh
peer_config
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1)

TLS=$(mktemp -d)
deploy/certs.sh --dir="$TLS" node >/dev/null
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

for n in $RANKS; do
  # Nightshift over data sockets, plaintext and mutual TLS: n processes
  # meeting through a rendezvous folder.
  for tls_flag in "" "--tls_dir=$TLS"; do
    rv=$(mktemp -d)
    for ((r = 1; r < n; r++)); do "$B" --transport=grpc --data_sockets $tls_flag --rank=$r --size=$n --rendezvous="$rv" --seconds="$SECS" >/dev/null & done
    "$B" --transport=grpc --data_sockets $tls_flag --rank=0 --size=$n --rendezvous="$rv" --seconds="$SECS" >>"$OUT/all"
    wait
  done
  # Nightshift with the data over gRPC too.
  rv=$(mktemp -d)
  for ((r = 1; r < n; r++)); do "$B" --transport=grpc --rank=$r --size=$n --rendezvous="$rv" --seconds="$SECS" >/dev/null & done
  "$B" --transport=grpc --rank=0 --size=$n --rendezvous="$rv" --seconds="$SECS" >>"$OUT/all"
  wait
  # The same with mutual TLS, as workers run it by default.
  rv=$(mktemp -d)
  for ((r = 1; r < n; r++)); do "$B" --transport=grpc --tls_dir="$TLS" --rank=$r --size=$n --rendezvous="$rv" --seconds="$SECS" >/dev/null & done
  "$B" --transport=grpc --tls_dir="$TLS" --rank=0 --size=$n --rendezvous="$rv" --seconds="$SECS" >>"$OUT/all"
  wait
  # The same with shared-memory rings between the (local) ranks, as workers run.
  rv=$(mktemp -d)
  for ((r = 1; r < n; r++)); do "$B" --transport=grpc --shared_memory --rank=$r --size=$n --rendezvous="$rv" --seconds="$SECS" >/dev/null & done
  "$B" --transport=grpc --shared_memory --rank=0 --size=$n --rendezvous="$rv" --seconds="$SECS" >>"$OUT/all"
  wait
  "${MPIRUN[@]}" -np $n --mca btl tcp,self --mca btl_tcp_if_include lo \
    "$B" --transport=mpi --seconds="$SECS" >>"$OUT/all"
  "${MPIRUN[@]}" -np $n --mca btl tcp,self --mca btl_tcp_if_include lo \
    "$B" --transport=mpi --native --seconds="$SECS" | sed 's/impl=mpi_allreduce/impl=mpi_allreduce_tcp/' >>"$OUT/all"
  # Raw MPI_Allreduce in a plain program, under glibc's default malloc and
  # with the tunables that give its best TCP figure.
  "${MPIRUN[@]}" -np $n --mca btl tcp,self --mca btl_tcp_if_include lo \
    "$RAW" 4096,65536,1048576,16777216,67108864 "$SECS" | sed 's/impl=mpi_raw/impl=mpi_raw_tcp/' >>"$OUT/all"
  "${MPIRUN[@]}" -np $n --mca btl tcp,self --mca btl_tcp_if_include lo \
    -x GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296 \
    "$RAW" 4096,65536,1048576,16777216,67108864 "$SECS" | sed 's/impl=mpi_raw/impl=mpi_raw_tcp_tuned/' >>"$OUT/all"
  "${MPIRUN[@]}" -np $n --mca btl vader,self \
    "$B" --transport=mpi --native --seconds="$SECS" | sed 's/impl=mpi_allreduce/impl=mpi_allreduce_shm/' >>"$OUT/all"
  port=$(free_port)
  for ((r = 1; r < n; r++)); do
    OMP_NUM_THREADS=1 peer_python bench/torch_allreduce.py --rank=$r --size=$n --port=$port --seconds="$SECS" >/dev/null &
  done
  OMP_NUM_THREADS=1 peer_python bench/torch_allreduce.py --rank=0 --size=$n --port=$port --seconds="$SECS" >>"$OUT/all"
  wait
done

/usr/bin/python3 - "$OUT/all" <<'PY'
import collections, sys
rows = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    f = dict(kv.split("=") for kv in line.split())
    rows[(int(f["ranks"]), int(f["bytes"]))][f["impl"]] = (float(f["us"]), float(f["busbw_gbps"]))
impls = ["nightshift_socket_ring", "nightshift_socket_ring_tls", "nightshift_grpc_ring", "nightshift_grpc_ring_tls", "nightshift_shm_ring", "nightshift_mpi_ring", "mpi_allreduce_tcp", "mpi_raw_tcp",
         "mpi_raw_tcp_tuned", "mpi_allreduce_shm", "gloo"]
short = ["ns_socket", "ns_socket_tls", "ns_grpc", "ns_grpc_tls", "ns_shm", "ns_mpi_ring", "ns_mpi_native", "raw_mpi_tcp", "raw_tcp_tuned", "mpi_shm", "gloo"]
def size(b):
    return f"{b // 1048576} MiB" if b >= 1048576 else f"{b // 1024} KiB"
print("latency us / bus bandwidth GB/s")
print(f"{'ranks':>5} {'size':>7} " + " ".join(f"{s:>16}" for s in short) +
      "   sock_tls/sock sock/gloo sock/raw_tuned sock/grpc shm/raw_shm ring/raw_tuned native/raw_tuned")
for (n, b) in sorted(rows):
    r = rows[(n, b)]
    cells = " ".join(f"{r[i][0]:>8.0f} {r[i][1]:>6.3f} " if i in r else f"{'-':>16}" for i in impls)
    def ratio(a, c):
        return f"{r[a][1] / r[c][1]:.2f}x" if a in r and c in r and r[c][1] > 0 else "-"
    print(f"{n:>5} {size(b):>7} {cells}  {ratio('nightshift_socket_ring_tls','nightshift_socket_ring'):>13} "
          f"{ratio('nightshift_socket_ring','gloo'):>9} "
          f"{ratio('nightshift_socket_ring','mpi_raw_tcp_tuned'):>15} "
          f"{ratio('nightshift_socket_ring','nightshift_grpc_ring'):>9} "
          f"{ratio('nightshift_shm_ring','mpi_allreduce_shm'):>11} "
          f"{ratio('nightshift_mpi_ring','mpi_raw_tcp_tuned'):>14} "
          f"{ratio('mpi_allreduce_tcp','mpi_raw_tcp_tuned'):>16}")
PY
