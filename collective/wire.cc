#include "collective/wire.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "collective/bfloat16.h"

namespace nightshift::collective {
namespace {

inline uint16_t FloatToF16(float f) {
  _Float16 h = static_cast<_Float16>(f);
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}

inline float F16ToFloat(uint16_t bits) {
  _Float16 h;
  std::memcpy(&h, &bits, 2);
  return static_cast<float>(h);
}

// Element i of 16-bit wire data that may sit at any byte address (gRPC
// slices do not align payloads): a memcpy, which compiles to one load.
inline uint16_t Half(const char* src, size_t i) {
  uint16_t bits;
  std::memcpy(&bits, src + 2 * i, 2);
  return bits;
}

template <typename Decode>
void ReduceWith(ReduceOp op, const char* src, size_t n, float* acc, Decode decode) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAverage:
      for (size_t i = 0; i < n; ++i) acc[i] += decode(Half(src, i));
      break;
    case ReduceOp::kMin:
      for (size_t i = 0; i < n; ++i) acc[i] = std::min(acc[i], decode(Half(src, i)));
      break;
    case ReduceOp::kMax:
      for (size_t i = 0; i < n; ++i) acc[i] = std::max(acc[i], decode(Half(src, i)));
      break;
  }
}

}  // namespace

const char* ReduceOpName(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kAverage:
      return "average";
    case ReduceOp::kMin:
      return "min";
    case ReduceOp::kMax:
      return "max";
  }
  return "?";
}

const char* WireDtypeName(WireDtype dtype) {
  switch (dtype) {
    case WireDtype::kFloat32:
      return "float32";
    case WireDtype::kBFloat16:
      return "bfloat16";
    case WireDtype::kFloat16:
      return "float16";
  }
  return "?";
}

double WireUnitRoundoff(WireDtype dtype) {
  switch (dtype) {
    case WireDtype::kFloat32:
      return 0;
    case WireDtype::kBFloat16:
      return std::ldexp(1.0, -8);
    case WireDtype::kFloat16:
      return std::ldexp(1.0, -11);
  }
  return 0;
}

size_t WireBytes(WireDtype dtype, size_t elements) {
  return elements * (dtype == WireDtype::kFloat32 ? 4 : 2);
}

void EncodeToWire(WireDtype dtype, const float* src, size_t n, char* dst) {
  if (dtype == WireDtype::kFloat32) {
    std::memcpy(dst, src, n * 4);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    const uint16_t bits = dtype == WireDtype::kBFloat16 ? FloatToBf16(src[i]) : FloatToF16(src[i]);
    std::memcpy(dst + 2 * i, &bits, 2);  // dst may sit at any byte address
  }
}

void DecodeFromWire(WireDtype dtype, const char* src, size_t n, float* acc) {
  if (dtype == WireDtype::kFloat32) {
    std::memcpy(acc, src, n * 4);
    return;
  }
  if (dtype == WireDtype::kBFloat16) {
    for (size_t i = 0; i < n; ++i) acc[i] = Bf16ToFloat(Half(src, i));
  } else {
    for (size_t i = 0; i < n; ++i) acc[i] = F16ToFloat(Half(src, i));
  }
}

void DecodeAndReduce(WireDtype dtype, ReduceOp op, const char* src, size_t n, float* acc) {
  if (dtype == WireDtype::kFloat32) {
    // The bytes may be unaligned (a protobuf string): loads through memcpy.
    // `src` is a char pointer, which may alias anything, so without
    // `omp simd` (src and acc never overlap: see wire.h) the compiler
    // keeps these loops scalar — 4-5x slower on the shared-memory path.
    switch (op) {
      case ReduceOp::kSum:
      case ReduceOp::kAverage:
#pragma omp simd
        for (size_t i = 0; i < n; ++i) {
          float v;
          std::memcpy(&v, src + 4 * i, 4);
          acc[i] += v;
        }
        break;
      case ReduceOp::kMin:  // std::min(acc, v) / std::max(acc, v), branch-free
#pragma omp simd
        for (size_t i = 0; i < n; ++i) {
          float v;
          std::memcpy(&v, src + 4 * i, 4);
          acc[i] = v < acc[i] ? v : acc[i];
        }
        break;
      case ReduceOp::kMax:
#pragma omp simd
        for (size_t i = 0; i < n; ++i) {
          float v;
          std::memcpy(&v, src + 4 * i, 4);
          acc[i] = acc[i] < v ? v : acc[i];
        }
        break;
    }
    return;
  }
  if (dtype == WireDtype::kBFloat16) {
    ReduceWith(op, src, n, acc, Bf16ToFloat);
  } else {
    ReduceWith(op, src, n, acc, F16ToFloat);
  }
}

void RoundToWire(WireDtype dtype, float* values, size_t n) {
  if (dtype == WireDtype::kBFloat16) {
    for (size_t i = 0; i < n; ++i) values[i] = Bf16ToFloat(FloatToBf16(values[i]));
  } else if (dtype == WireDtype::kFloat16) {
    for (size_t i = 0; i < n; ++i) values[i] = F16ToFloat(FloatToF16(values[i]));
  }
}

}  // namespace nightshift::collective
