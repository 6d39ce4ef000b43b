#include "collective/transport/grpc/peer_chunk_codec.h"

#include "absl/strings/str_cat.h"

namespace nightshift::collective {
namespace {

// A payload buffer lent to gRPC; back to its pool when gRPC releases it.
struct LentBuffer {
  std::shared_ptr<BufferPool> pool;
  std::string bytes;
};

void ReturnLentBuffer(void* p) {
  auto* lent = static_cast<LentBuffer*>(p);
  lent->pool->Put(std::move(lent->bytes));
  delete lent;
}

void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Reads bytes across a list of slices.
class SliceReader {
 public:
  explicit SliceReader(const std::vector<grpc::Slice>& slices) : slices_(slices) { Skip0(); }

  bool done() const { return index_ == slices_.size(); }
  size_t offset() const { return consumed_; }

  bool ReadByte(uint8_t* b) {
    if (done()) return false;
    *b = slices_[index_].begin()[pos_];
    Advance(1);
    return true;
  }

  bool ReadVarint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b;
      if (!ReadByte(&b)) return false;
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }

  // Views of the next n bytes (no copy).
  bool ReadViews(size_t n, std::vector<absl::string_view>* views) {
    while (n > 0) {
      if (done()) return false;
      const grpc::Slice& s = slices_[index_];
      const size_t take = std::min(n, s.size() - pos_);
      views->emplace_back(reinterpret_cast<const char*>(s.begin()) + pos_, take);
      Advance(take);
      n -= take;
    }
    return true;
  }

  bool ReadString(size_t n, std::string* out) {
    std::vector<absl::string_view> views;
    if (!ReadViews(n, &views)) return false;
    out->clear();
    for (absl::string_view v : views) out->append(v.data(), v.size());
    return true;
  }

 private:
  void Advance(size_t n) {
    pos_ += n;
    consumed_ += n;
    Skip0();
  }
  void Skip0() {
    while (index_ < slices_.size() && pos_ == slices_[index_].size()) {
      ++index_;
      pos_ = 0;
    }
  }

  const std::vector<grpc::Slice>& slices_;
  size_t index_ = 0, pos_ = 0, consumed_ = 0;
};

}  // namespace

grpc::ByteBuffer EncodePeerChunk(const v1::PeerChunk& header,
                                 absl::Span<const absl::string_view> payload_parts,
                                 const std::shared_ptr<BufferPool>& pool) {
  size_t payload = 0;
  for (absl::string_view p : payload_parts) payload += p.size();
  std::string head = header.SerializeAsString();
  if (payload == 0) {
    grpc::Slice only(head);
    return grpc::ByteBuffer(&only, 1);
  }
  head.push_back(static_cast<char>((6 << 3) | 2));  // payload: length-delimited
  AppendVarint(&head, payload);
  auto* lent = new LentBuffer{pool, pool->Get()};
  lent->bytes.clear();
  for (absl::string_view p : payload_parts) lent->bytes.append(p.data(), p.size());
  grpc::Slice slices[2] = {grpc::Slice(head), grpc::Slice(lent->bytes.data(), lent->bytes.size(),
                                                          &ReturnLentBuffer, lent)};
  return grpc::ByteBuffer(slices, 2);
}

absl::StatusOr<DecodedPeerChunk> DecodePeerChunk(const grpc::ByteBuffer& buffer) {
  DecodedPeerChunk chunk;
  if (!buffer.Dump(&chunk.slices).ok()) {
    return absl::InvalidArgumentError("unreadable PeerChunk buffer");
  }
  SliceReader in(chunk.slices);
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed PeerChunk at byte offset ", in.offset(), ": ", what));
  };
  while (!in.done()) {
    uint64_t key;
    if (!in.ReadVarint(&key)) return bad("truncated field key");
    const int field = static_cast<int>(key >> 3);
    const int type = static_cast<int>(key & 7);
    if (type == 0) {
      uint64_t v;
      if (!in.ReadVarint(&v)) return bad("truncated varint");
      switch (field) {
        case 2:
          chunk.header.set_generation(static_cast<int64_t>(v));
          break;
        case 3:
          chunk.header.set_source_rank(static_cast<int32_t>(v));
          break;
        case 4:
          chunk.header.set_tag(v);
          break;
        case 5:
          chunk.header.set_offset(v);
          break;
        default:
          break;  // unknown: skipped, as protobuf would
      }
    } else if (type == 2) {
      uint64_t n;
      if (!in.ReadVarint(&n)) return bad("truncated length");
      bool ok = true;
      switch (field) {
        case 1:
          ok = in.ReadString(n, chunk.header.mutable_job_id());
          break;
        case 6:  // a repeated occurrence replaces, as protobuf's would
          chunk.payload.clear();
          ok = in.ReadViews(n, &chunk.payload);
          chunk.payload_bytes = n;
          break;
        case 7:
          ok = in.ReadString(n, chunk.header.mutable_abort_reason());
          break;
        default: {
          std::vector<absl::string_view> skipped;
          ok = in.ReadViews(n, &skipped);
        }
      }
      if (!ok) return bad("field runs past the end");
    } else if (type == 1 || type == 5) {  // fixed64 / fixed32: skip
      std::vector<absl::string_view> skipped;
      if (!in.ReadViews(type == 1 ? 8 : 4, &skipped)) return bad("truncated fixed field");
    } else {
      return bad(absl::StrCat("unsupported wire type ", type));
    }
  }
  return chunk;
}

}  // namespace nightshift::collective
