// The hand-written PeerChunk encoding is the protobuf encoding, and the
// decoder reads any protobuf-encoded PeerChunk, however gRPC slices it.
#include "collective/transport/grpc/peer_chunk_codec.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nightshift::collective {
namespace {

v1::PeerChunk Header() {
  v1::PeerChunk h;
  h.set_job_id("job-7");
  h.set_generation(3);
  h.set_source_rank(2);
  h.set_tag((uint64_t{5} << 32) | 9);
  return h;
}

std::string Join(const std::vector<absl::string_view>& parts) {
  std::string s;
  for (auto p : parts) s.append(p.data(), p.size());
  return s;
}

std::string Flatten(const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(b.Dump(&slices).ok());
  std::string s;
  for (const auto& sl : slices) s.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  return s;
}

TEST(PeerChunkCodecTest, EncodingParsesAsProtobuf) {
  auto pool = std::make_shared<BufferPool>();
  std::string payload(300000, 'x');
  payload[0] = 'a';
  payload.back() = 'z';
  const absl::string_view parts[] = {absl::string_view(payload).substr(0, 1000),
                                     absl::string_view(payload).substr(1000)};
  grpc::ByteBuffer encoded = EncodePeerChunk(Header(), parts, pool);
  v1::PeerChunk parsed;
  ASSERT_TRUE(parsed.ParseFromString(Flatten(encoded)));
  EXPECT_EQ(parsed.job_id(), "job-7");
  EXPECT_EQ(parsed.generation(), 3);
  EXPECT_EQ(parsed.source_rank(), 2);
  EXPECT_EQ(parsed.tag(), (uint64_t{5} << 32) | 9);
  EXPECT_EQ(parsed.payload(), payload);
}

TEST(PeerChunkCodecTest, DecodesProtobufEncodingSplitAnywhere) {
  v1::PeerChunk full = Header();
  full.set_payload(std::string(1234, '\x07') + "end");
  const std::string bytes = full.SerializeAsString();
  for (size_t cut : {size_t{1}, size_t{5}, size_t{17}, bytes.size() - 4}) {
    grpc::Slice slices[3] = {grpc::Slice(bytes.substr(0, cut)), grpc::Slice(bytes.substr(cut, 3)),
                             grpc::Slice(bytes.substr(cut + 3))};
    grpc::ByteBuffer buffer(slices, 3);
    auto decoded = DecodePeerChunk(buffer);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->header.job_id(), "job-7");
    EXPECT_EQ(decoded->header.tag(), full.tag());
    EXPECT_EQ(decoded->header.payload(), "") << "payload must stay in the slices";
    EXPECT_EQ(decoded->payload_bytes, full.payload().size());
    EXPECT_EQ(Join(decoded->payload), full.payload()) << "cut at " << cut;
  }
}

TEST(PeerChunkCodecTest, AbortNoticeHasNoPayload) {
  v1::PeerChunk h = Header();
  h.set_abort_reason("rank 1 did not answer");
  auto decoded = DecodePeerChunk(EncodePeerChunk(h, {}, std::make_shared<BufferPool>()));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->header.abort_reason(), "rank 1 did not answer");
  EXPECT_EQ(decoded->payload_bytes, 0u);
}

TEST(PeerChunkCodecTest, MalformedInputNamesTheOffset) {
  v1::PeerChunk full = Header();
  full.set_payload("0123456789");
  std::string bytes = full.SerializeAsString();
  bytes.resize(bytes.size() - 4);  // payload runs past the end
  grpc::Slice slice(bytes);
  auto decoded = DecodePeerChunk(grpc::ByteBuffer(&slice, 1));
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(decoded.status().message()), testing::HasSubstr("byte offset"));
}

}  // namespace
}  // namespace nightshift::collective
