// DeltaCodec: how a DiLoCo replica's pseudo-gradient (the change of its
// parameters over a round) travels over a vehicle's metered link.
//
//   kInt8Blockwise  (the default) blocks of `block` values share one
//                   float32 scale, max|x| / 127; each value is rounded to
//                   the nearest of the 255 levels. 1 + 4/block bytes per
//                   value (1.016 at 256): ~3.9x smaller than float32.
//                   Error per value at most scale / 2.
//   kBFloat16       2 bytes per value, relative error 2^-8.
//   kFloat32        exact.
//
// Encoded layout (little-endian), the same for every format so that a
// receiver checks it before it trusts it:
//   u8  format (0 float32, 1 bfloat16, 2 int8 blockwise)
//   u32 element count n
//   u32 block (int8 only; else 0)
//   int8 only: ceil(n / block) float32 scales, then n int8 values
//   else:      n values of the format
// Decode refuses (INVALID_ARGUMENT naming the byte offset) a buffer whose
// sizes do not add up, an unknown format, a count other than expected, a
// scale that is negative or not finite: nothing a vehicle sends can make
// the coordinator read out of bounds or aggregate a NaN.
//
// ErrorFeedback keeps what rounding lost and adds it to the next round's
// delta (Seide et al. 2014; Karimireddy et al. 2019, EF-SGD): the sum of
// what was sent over rounds tracks the sum of the true deltas to within
// one round's rounding error.
//
// Pure functions; ErrorFeedback is owned by one replica.
#ifndef NIGHTSHIFT_COLLECTIVE_DELTA_CODEC_H_
#define NIGHTSHIFT_COLLECTIVE_DELTA_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace nightshift::collective {

enum class DeltaFormat : uint8_t { kFloat32 = 0, kBFloat16 = 1, kInt8Blockwise = 2 };

inline constexpr int kDefaultDeltaBlock = 256;

const char* DeltaFormatName(DeltaFormat format);

// The encoded bytes of `values`. `block` (int8 only) must be in [1, 65536].
std::string EncodeDelta(DeltaFormat format, absl::Span<const float> values,
                        int block = kDefaultDeltaBlock);

// Its size for `n` values, without encoding.
size_t EncodedDeltaBytes(DeltaFormat format, size_t n, int block = kDefaultDeltaBlock);

// The values of `bytes`, which must hold exactly `expected` of them.
absl::StatusOr<std::vector<float>> DecodeDelta(absl::string_view bytes, size_t expected);

class ErrorFeedback {
 public:
  explicit ErrorFeedback(size_t n) : residual_(n, 0.0f), before_(n, 0.0f) {}
  // Adds the carried residual to `delta`, encodes it, and keeps what the
  // encoding lost for the next call. `delta.size()` must be n.
  std::string Encode(DeltaFormat format, absl::Span<const float> delta,
                     int block = kDefaultDeltaBlock);
  // The last Encode's bytes never counted (the push was refused or did
  // not land): the residual is what it was before it, still to be sent.
  void UndoLastEncode() { residual_ = before_; }
  absl::Span<const float> residual() const { return residual_; }

 private:
  std::vector<float> residual_;
  std::vector<float> before_;  // residual_ before the last Encode
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_DELTA_CODEC_H_
