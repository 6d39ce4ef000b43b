// SetComputeThreads: the number of threads oneDNN primitives and the
// optimizer loops use in this process (they share one OpenMP pool).
// Call once at start-up, before the first primitive runs.
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
