// Reduction operations and the number formats gradients travel in.
//
// On the wire a float32 buffer may be sent as bfloat16 or float16 (round to
// nearest even); receivers always widen to float32 before they add, so
// accumulation is float32 whatever the wire carries. Error bound of a
// compressed all-reduce over n ranks (each of the n−1 hops of the
// reduce-scatter and the one all-gather hop rounds once, with unit
// roundoff u = 2^-8 for bfloat16, 2^-11 for float16):
//     |result − exact| ≤ n · u · Σ_r |x_r|   (+ float32 rounding)
// float16 also saturates: magnitudes above 65504 become infinity, so it is
// for gradients known to be small; bfloat16 keeps float32's range.
// Pure functions, thread-safe.
#ifndef NIGHTSHIFT_COLLECTIVE_WIRE_H_
#define NIGHTSHIFT_COLLECTIVE_WIRE_H_

#include <cstddef>
#include <cstdint>

namespace nightshift::collective {

enum class ReduceOp { kSum, kAverage, kMin, kMax };
enum class WireDtype { kFloat32, kBFloat16, kFloat16 };

const char* ReduceOpName(ReduceOp op);
const char* WireDtypeName(WireDtype dtype);

// Unit roundoff of one rounding to `dtype` (0 for float32).
double WireUnitRoundoff(WireDtype dtype);
size_t WireBytes(WireDtype dtype, size_t elements);

// dst receives WireBytes(dtype, n) bytes.
void EncodeToWire(WireDtype dtype, const float* src, size_t n, char* dst);
// acc[i] = decoded[i].
void DecodeFromWire(WireDtype dtype, const char* src, size_t n, float* acc);
// acc[i] = op(acc[i], decoded[i]); kAverage adds (the caller divides).
// `src` must not overlap `acc`.
void DecodeAndReduce(WireDtype dtype, ReduceOp op, const char* src, size_t n, float* acc);
// Rounds values to what the wire would carry, in place (identity for
// float32), so the sender's copy matches what receivers decode.
void RoundToWire(WireDtype dtype, float* values, size_t n);

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_WIRE_H_
