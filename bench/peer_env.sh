# PyTorch and gloo peers at their best on this machine: the one place the
# benchmarks say how a peer runs. Sourced by bench/run_*.sh.
#
#   peer_python ARGS...   runs /usr/bin/python3 ARGS as a performance-minded
#                         user would run Debian's PyTorch here:
#     - glibc keeps large blocks in its heap (mmap_max=0, trim_threshold at
#       its maximum): without it glibc unmaps and re-maps the step's big
#       buffers every step, and each re-mapping is page faults (torch_train.py
#       with one thread: 7,600 samples/s as is, 41,300 tuned). The same
#       tuning raw Open MPI gets (run_allreduce.sh).
#     - the OpenMP build of OpenBLAS, named explicitly (it is the only one
#       deploy/setup.sh installs, and torch.set_num_threads sets OpenMP's
#       count, which the pthreads build would ignore).
#     - this machine's OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset, so
#       OpenBLAS picks its kernel from the CPU: Cooperlake (AVX-512) here
#       instead of the forced Haswell one. torch_mlp_step.py with one
#       thread, 2026-12-04: batch 64 32,480 -> 52,249 samples/s, batch 256
#       38,311 -> 62,639 (with the glibc tuning above in both).
#   peer_config           one line naming that configuration and the kernel
#                         OpenBLAS reports it runs with, for the benchmark's
#                         output.
# Callers set OMP_NUM_THREADS themselves.

PEER_GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967295
PEER_OPENBLAS_DIR=/usr/lib/x86_64-linux-gnu/openblas-openmp

peer_python() {
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE GLIBC_TUNABLES="$PEER_GLIBC_TUNABLES" \
    LD_LIBRARY_PATH="$PEER_OPENBLAS_DIR" /usr/bin/python3 "$@"
}

peer_config() {
  local core
  core=$(peer_python -c '
import ctypes, torch  # torch loads the OpenBLAS it links
lib = ctypes.CDLL("libopenblas.so.0")
lib.openblas_get_corename.restype = ctypes.c_char_p
lib.openblas_get_config.restype = ctypes.c_char_p
print(lib.openblas_get_corename().decode(), "|", lib.openblas_get_config().decode())' 2>&1 | tail -1)
  echo "peer config (PyTorch, gloo): GLIBC_TUNABLES=$PEER_GLIBC_TUNABLES," \
    "OpenBLAS $PEER_OPENBLAS_DIR, OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset; OpenBLAS reports: $core"
}
