// DeltaCodec: each format's error bound and size, error feedback keeping
// the sum of what was sent on the sum of the true deltas, and every
// malformed buffer refused with its byte offset.
#include "collective/delta_codec.h"

#include <cmath>
#include <cstring>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nightshift::collective {
namespace {

using testing::HasSubstr;

std::vector<float> Gaussian(size_t n, float sigma, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(DeltaCodecTest, EachFormatWithinItsBoundAndSize) {
  const std::vector<float> delta = Gaussian(10'000, 0.01f, 1);
  for (DeltaFormat f :
       {DeltaFormat::kFloat32, DeltaFormat::kBFloat16, DeltaFormat::kInt8Blockwise}) {
    const std::string bytes = EncodeDelta(f, delta);
    EXPECT_EQ(bytes.size(), EncodedDeltaBytes(f, delta.size())) << DeltaFormatName(f);
    const std::vector<float> back = *DecodeDelta(bytes, delta.size());
    for (size_t i = 0; i < delta.size(); ++i) {
      if (f == DeltaFormat::kFloat32) {
        ASSERT_EQ(back[i], delta[i]);
      } else if (f == DeltaFormat::kBFloat16) {
        ASSERT_LE(std::fabs(back[i] - delta[i]), std::ldexp(std::fabs(delta[i]), -8)) << i;
      } else {
        // Half a step of the block's scale (max |x| / 127).
        const size_t b = i / kDefaultDeltaBlock;
        float peak = 0;
        for (size_t j = b * kDefaultDeltaBlock;
             j < std::min(delta.size(), (b + 1) * kDefaultDeltaBlock); ++j) {
          peak = std::max(peak, std::fabs(delta[j]));
        }
        ASSERT_LE(std::fabs(back[i] - delta[i]), peak / 127 / 2 * 1.0001f) << i;
      }
    }
  }
  EXPECT_EQ(EncodedDeltaBytes(DeltaFormat::kInt8Blockwise, 10'000), 9u + 4 * 40 + 10'000)
      << "~3.9x smaller than float32";
  EXPECT_EQ(*DecodeDelta(EncodeDelta(DeltaFormat::kInt8Blockwise, std::vector<float>(7, 0.0f)), 7),
            std::vector<float>(7, 0.0f))
      << "a block of zeros";
}

TEST(DeltaCodecTest, ErrorFeedbackKeepsTheSumOfWhatWasSentOnTheTrueSum) {
  const size_t n = 4096;
  ErrorFeedback feedback(n);
  std::vector<double> truth(n, 0), sent(n, 0);
  for (int round = 0; round < 50; ++round) {
    const std::vector<float> delta = Gaussian(n, 0.01f, 100 + round);
    const std::vector<float> got =
        *DecodeDelta(feedback.Encode(DeltaFormat::kInt8Blockwise, delta), n);
    for (size_t i = 0; i < n; ++i) {
      truth[i] += delta[i];
      sent[i] += got[i];
    }
  }
  // What is still owed is the residual alone: one round's rounding.
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    EXPECT_NEAR(truth[i] - sent[i], feedback.residual()[i], 1e-5) << i;
    worst = std::max(worst, std::fabs(truth[i] - sent[i]));
  }
  EXPECT_LT(worst, 0.05 / 127) << "within half a step of a large block scale";
}

TEST(DeltaCodecTest, AnEncodeUndoneLeavesTheResidualItCarried) {
  const size_t n = 1024;
  ErrorFeedback feedback(n);
  feedback.Encode(DeltaFormat::kInt8Blockwise, Gaussian(n, 0.01f, 1));
  const std::vector<float> carried(feedback.residual().begin(), feedback.residual().end());
  feedback.Encode(DeltaFormat::kInt8Blockwise, Gaussian(n, 0.01f, 2));  // refused upstream
  ASSERT_NE(std::vector<float>(feedback.residual().begin(), feedback.residual().end()), carried);
  feedback.UndoLastEncode();
  EXPECT_EQ(std::vector<float>(feedback.residual().begin(), feedback.residual().end()), carried);
}

TEST(DeltaCodecTest, MalformedBuffersAreRefusedWithTheirOffset) {
  const std::vector<float> v = Gaussian(300, 1, 2);
  const std::string good = EncodeDelta(DeltaFormat::kInt8Blockwise, v);
  EXPECT_THAT(DecodeDelta(good.substr(0, 5), 300).status().message(),
              HasSubstr("offset 0: 5 bytes, shorter than the 9-byte header"));
  std::string bad = good;
  bad[0] = 7;
  EXPECT_THAT(DecodeDelta(bad, 300).status().message(), HasSubstr("unknown format 7"));
  EXPECT_THAT(DecodeDelta(good, 301).status().message(),
              HasSubstr("offset 1: 300 values, expected 301"));
  EXPECT_THAT(DecodeDelta(good + "x", 300).status().message(),
              HasSubstr("but 300 int8 blockwise values take"));
  bad = good;
  std::memset(&bad[5], 0, 4);
  EXPECT_THAT(DecodeDelta(bad, 300).status().message(), HasSubstr("offset 5: block 0 not in"));
  bad = good;
  const float nan = std::nanf("");
  std::memcpy(&bad[9 + 4], &nan, 4);
  EXPECT_THAT(DecodeDelta(bad, 300).status().message(),
              HasSubstr("offset 13: block 1's scale is nan"));
  bad = good;
  const float negative = -1;
  std::memcpy(&bad[9], &negative, 4);
  EXPECT_THAT(DecodeDelta(bad, 300).status().message(), HasSubstr("block 0's scale is -1"));
  // A huge count cannot make it allocate: the sizes must add up first.
  bad = good;
  std::memset(&bad[1], 0xff, 4);
  EXPECT_FALSE(DecodeDelta(bad, 0xffffffffu).ok());
}

}  // namespace
}  // namespace nightshift::collective
