#include "collective/shared_step.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "base/status_macros.h"
#include "collective/ring.h"

namespace nightshift::collective {
namespace {

// Calls fn(begin, end) for each chunk of rank `owner` in [0, floats).
template <typename Fn>
void ForEachOwnedChunk(int64_t floats, int owner, int size, Fn fn) {
  const int64_t segment = OwnedSegment(owner, size);
  for (int64_t begin = segment * kRingChunkElements; begin < floats;
       begin += size * kRingChunkElements) {
    fn(begin, std::min(floats, begin + kRingChunkElements));
  }
}

// Copies n floats with non-temporal stores, which write to memory without
// first taking the line into this core's cache (and out of any other
// core's); `to` is 64-byte aligned. A store fence must follow before a
// peer may read them.
void StreamCopy(float* to, const float* from, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) _mm512_stream_ps(to + i, _mm512_loadu_ps(from + i));
#elif defined(__AVX__)
  for (; i + 8 <= n; i += 8) _mm256_stream_ps(to + i, _mm256_loadu_ps(from + i));
#elif defined(__SSE2__)
  for (; i + 4 <= n; i += 4) _mm_stream_ps(to + i, _mm_loadu_ps(from + i));
#endif
  std::memcpy(to + i, from + i, (n - i) * sizeof(float));
}

void StoreFence() {
#if defined(__SSE2__)
  _mm_sfence();
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

}  // namespace

absl::Status SharedStepUpdate(SharedStepMemory& memory, int rank, int size, uint32_t seq,
                              const std::function<void(int64_t begin, int64_t end)>& update,
                              absl::Time deadline) {
  const int64_t floats = memory.floats();
  // 1–2.
  memory.Publish(SharedStepMemory::kGradientsReady, seq);
  for (int r = 0; r < size; ++r) {
    if (r != rank)
      RETURN_IF_ERROR(memory.Await(r, SharedStepMemory::kGradientsReady, seq, deadline));
  }
  // 3. The segment's own rank first, then around the ring; this rank's
  // own gradients are the last addend (the ring's owner adds its value
  // last) and also where the sum goes.
  float* mine = memory.parameters(rank);
  float* published = memory.published_parameters(rank);
  const int segment = OwnedSegment(rank, size);
  const float* first = memory.gradients(segment);
  float* own = memory.gradients(rank);
  std::vector<const float*> middle;  // ranks segment+1 .. rank-1
  for (int k = 1; k < size - 1; ++k) middle.push_back(memory.gradients((segment + k) % size));
  std::vector<float> partial(middle.empty() ? 0 : kRingChunkElements);
  ForEachOwnedChunk(floats, rank, size, [&](int64_t begin, int64_t end) {
    const float* acc = first + begin;
    if (!middle.empty()) {
      float* p = partial.data();
      std::memcpy(p, acc, (end - begin) * sizeof(float));
      for (const float* a : middle) {
        const float* x = a + begin;
#pragma omp simd
        for (int64_t i = 0; i < end - begin; ++i) p[i] = x[i] + p[i];
      }
      acc = p;
    }
    float* out = own + begin;
#pragma omp simd
    for (int64_t i = 0; i < end - begin; ++i) out[i] = out[i] + acc[i];
    update(begin, end);
    StreamCopy(published + begin, mine + begin, end - begin);
  });
  // 4–5.
  StoreFence();
  memory.Publish(SharedStepMemory::kParametersReady, seq);
  for (int r = 0; r < size; ++r) {
    if (r == rank) continue;
    RETURN_IF_ERROR(memory.Await(r, SharedStepMemory::kParametersReady, seq, deadline));
    const float* theirs = memory.published_parameters(r);
    ForEachOwnedChunk(floats, r, size, [&](int64_t begin, int64_t end) {
      std::memcpy(mine + begin, theirs + begin, (end - begin) * sizeof(float));
    });
  }
  return absl::OkStatus();
}

}  // namespace nightshift::collective
