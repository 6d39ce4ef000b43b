#include "collective/delta_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "collective/bfloat16.h"

namespace nightshift::collective {
namespace {

constexpr size_t kHeaderBytes = 1 + 4 + 4;

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

size_t Blocks(size_t n, int block) { return (n + static_cast<size_t>(block) - 1) / block; }

// The scale of one block: max |x| / 127 (0 for a block of zeros).
float BlockScale(const float* x, size_t n) {
  float peak = 0;
  for (size_t i = 0; i < n; ++i) peak = std::max(peak, std::fabs(x[i]));
  return peak / 127.0f;
}

int8_t Quantize(float x, float scale) {
  if (scale == 0) return 0;
  const float q = std::nearbyint(x / scale);
  return static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
}

absl::Status Bad(size_t offset, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("delta at byte offset ", offset, ": ", what));
}

}  // namespace

const char* DeltaFormatName(DeltaFormat format) {
  switch (format) {
    case DeltaFormat::kFloat32:
      return "float32";
    case DeltaFormat::kBFloat16:
      return "bfloat16";
    case DeltaFormat::kInt8Blockwise:
      return "int8 blockwise";
  }
  return "?";
}

size_t EncodedDeltaBytes(DeltaFormat format, size_t n, int block) {
  switch (format) {
    case DeltaFormat::kFloat32:
      return kHeaderBytes + 4 * n;
    case DeltaFormat::kBFloat16:
      return kHeaderBytes + 2 * n;
    case DeltaFormat::kInt8Blockwise:
      return kHeaderBytes + 4 * Blocks(n, block) + n;
  }
  return 0;
}

std::string EncodeDelta(DeltaFormat format, absl::Span<const float> values, int block) {
  const size_t n = values.size();
  std::string out;
  out.reserve(EncodedDeltaBytes(format, n, block));
  out.push_back(static_cast<char>(format));
  PutU32(out, static_cast<uint32_t>(n));
  PutU32(out, format == DeltaFormat::kInt8Blockwise ? static_cast<uint32_t>(block) : 0);
  if (n == 0) return out;
  switch (format) {
    case DeltaFormat::kFloat32: {
      const size_t at = out.size();
      out.resize(at + 4 * n);
      std::memcpy(out.data() + at, values.data(), 4 * n);
      break;
    }
    case DeltaFormat::kBFloat16: {
      for (float v : values) {
        const uint16_t h = FloatToBf16(v);
        out.push_back(static_cast<char>(h & 0xff));
        out.push_back(static_cast<char>(h >> 8));
      }
      break;
    }
    case DeltaFormat::kInt8Blockwise: {
      const size_t blocks = Blocks(n, block);
      std::vector<float> scales(blocks);
      for (size_t b = 0; b < blocks; ++b) {
        const size_t begin = b * block, end = std::min(n, begin + block);
        scales[b] = BlockScale(values.data() + begin, end - begin);
      }
      const size_t at = out.size();
      out.resize(at + 4 * blocks + n);
      std::memcpy(out.data() + at, scales.data(), 4 * blocks);
      char* q = out.data() + at + 4 * blocks;
      for (size_t i = 0; i < n; ++i)
        q[i] = static_cast<char>(Quantize(values[i], scales[i / block]));
      break;
    }
  }
  return out;
}

absl::StatusOr<std::vector<float>> DecodeDelta(absl::string_view bytes, size_t expected) {
  if (bytes.size() < kHeaderBytes) {
    return Bad(0, absl::StrCat(bytes.size(), " bytes, shorter than the 9-byte header"));
  }
  const uint8_t tag = static_cast<uint8_t>(bytes[0]);
  if (tag > static_cast<uint8_t>(DeltaFormat::kInt8Blockwise)) {
    return Bad(0, absl::StrCat("unknown format ", tag));
  }
  const DeltaFormat format = static_cast<DeltaFormat>(tag);
  const uint32_t n = GetU32(bytes.data() + 1);
  const uint32_t block = GetU32(bytes.data() + 5);
  if (n != expected) return Bad(1, absl::StrCat(n, " values, expected ", expected));
  if (format == DeltaFormat::kInt8Blockwise && (block < 1 || block > 65536)) {
    return Bad(5, absl::StrCat("block ", block, " not in [1, 65536]"));
  }
  const size_t want = EncodedDeltaBytes(format, n, static_cast<int>(std::max<uint32_t>(block, 1)));
  if (bytes.size() != want) {
    return Bad(kHeaderBytes, absl::StrCat(bytes.size(), " bytes, but ", n, " ",
                                          DeltaFormatName(format), " values take ", want));
  }
  std::vector<float> out(n);
  if (n == 0) return out;  // (and no memcpy from or to a null pointer)
  const char* body = bytes.data() + kHeaderBytes;
  if (format == DeltaFormat::kFloat32) {
    std::memcpy(out.data(), body, 4 * static_cast<size_t>(n));
    return out;
  }
  if (format == DeltaFormat::kBFloat16) {
    for (size_t i = 0; i < n; ++i) {
      out[i] = Bf16ToFloat(static_cast<uint16_t>(static_cast<unsigned char>(body[2 * i]) |
                                                 static_cast<unsigned char>(body[2 * i + 1]) << 8));
    }
    return out;
  }
  const size_t blocks = Blocks(n, static_cast<int>(block));
  std::vector<float> scales(blocks);
  std::memcpy(scales.data(), body, 4 * blocks);
  for (size_t b = 0; b < blocks; ++b) {
    if (!std::isfinite(scales[b]) || scales[b] < 0) {
      return Bad(kHeaderBytes + 4 * b, absl::StrCat("block ", b, "'s scale is ", scales[b]));
    }
  }
  const int8_t* q = reinterpret_cast<const int8_t*>(body + 4 * blocks);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(q[i]) * scales[i / block];
  return out;
}

std::string ErrorFeedback::Encode(DeltaFormat format, absl::Span<const float> delta, int block) {
  std::vector<float> corrected(delta.size());
  before_ = residual_;
  for (size_t i = 0; i < delta.size(); ++i) corrected[i] = delta[i] + residual_[i];
  std::string bytes = EncodeDelta(format, corrected, block);
  // Our own bytes: they decode.
  const std::vector<float> sent = *DecodeDelta(bytes, corrected.size());
  for (size_t i = 0; i < delta.size(); ++i) residual_[i] = corrected[i] - sent[i];
  return bytes;
}

}  // namespace nightshift::collective
