// CpuRelax: the hint a spin-wait gives the CPU between polls ("I am
// spinning": saves power, and lets a sibling hyper-thread run). The one
// place that knows each architecture's instruction; elsewhere a compiler
// barrier, so spin loops stay correct on every machine (vehicles run ARM
// computers).
#ifndef NIGHTSHIFT_BASE_CPU_RELAX_H_
#define NIGHTSHIFT_BASE_CPU_RELAX_H_

namespace nightshift {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

}  // namespace nightshift

#endif  // NIGHTSHIFT_BASE_CPU_RELAX_H_
