// ConfigureAllocatorForLargeMessages: process start-up setting for
// binaries that move large buffers (workers, benchmarks).
//
// glibc serves blocks above its mmap threshold with fresh mappings and
// gives freed heap tops back to the kernel; a process that allocates and
// frees megabyte-sized message buffers every step then pays a page fault
// per 4 KiB, each zeroing a page (measured: 30-40% of all-reduce
// bandwidth at 1-16 MiB over gRPC). This keeps such blocks in the heap and
// the heap mapped, as GLIBC_TUNABLES=glibc.malloc.mmap_max=0:
// glibc.malloc.trim_threshold=... would. Call once from main(), before
// threads start.
#ifndef NIGHTSHIFT_BASE_ALLOCATOR_H_
#define NIGHTSHIFT_BASE_ALLOCATOR_H_

#include <malloc.h>

#include <climits>

namespace nightshift {

inline void ConfigureAllocatorForLargeMessages() {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
}

}  // namespace nightshift

#endif  // NIGHTSHIFT_BASE_ALLOCATOR_H_
