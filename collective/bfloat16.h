// bfloat16 <-> float32, round to nearest even (NaN stays NaN): the top 16
// bits of a float32. Shared by the all-reduce wire formats (wire.h) and
// the DiLoCo deltas (delta_codec.h). Header-only, no float16 (which
// clang 14 cannot compile on x86: the fuzz builds include this).
#ifndef NIGHTSHIFT_COLLECTIVE_BFLOAT16_H_
#define NIGHTSHIFT_COLLECTIVE_BFLOAT16_H_

#include <cmath>
#include <cstdint>
#include <cstring>

namespace nightshift::collective {

inline uint16_t FloatToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if (std::isnan(f)) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fff + ((bits >> 16) & 1);  // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}

inline float Bf16ToFloat(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_BFLOAT16_H_
