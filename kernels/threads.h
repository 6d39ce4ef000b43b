// SetComputeThreads: the number of threads oneDNN primitives and the
// optimizer loops use (they share one OpenMP pool). OpenMP keeps the
// setting per calling thread: a process computing on one thread calls it
// once at start-up, before the first primitive runs; one that computes on
// several threads (the fleet simulator's trainers) calls it on each.
#ifndef NIGHTSHIFT_KERNELS_THREADS_H_
#define NIGHTSHIFT_KERNELS_THREADS_H_

#include <omp.h>

namespace nightshift {

// n <= 0 keeps the default (one per core).
inline void SetComputeThreads(int n) {
  if (n > 0) omp_set_num_threads(n);
}

inline int ComputeThreads() { return omp_get_max_threads(); }

}  // namespace nightshift

#endif  // NIGHTSHIFT_KERNELS_THREADS_H_
