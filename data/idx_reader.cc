#include "data/idx_reader.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace nightshift {
namespace {

constexpr size_t kFilePiece = 1 << 20;
constexpr size_t kInflatePiece = 1 << 16;

bool Raised(const std::atomic<bool>* stop) {
  return stop != nullptr && stop->load(std::memory_order_relaxed);
}

bool IsGzip(absl::string_view bytes) {
  return bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0x1f &&
         static_cast<uint8_t>(bytes[1]) == 0x8b;
}

struct IdxHeader {
  std::vector<int64_t> dims;
  size_t bytes = 0;    // the header's length; the data follows
  uint64_t count = 0;  // prod(dims)
};

// Checks the header and that `bytes` holds exactly the data it declares.
absl::StatusOr<IdxHeader> ParseIdxHeader(absl::string_view bytes, const std::string& path) {
  if (bytes.size() < 4) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": truncated IDX header: file ends at byte offset ", bytes.size(),
                     ", the magic number needs 4 bytes"));
  }
  const auto* b = reinterpret_cast<const uint8_t*>(bytes.data());
  if (b[0] != 0 || b[1] != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": bad IDX magic number at byte offset 0: expected 00 00, got ",
                     absl::Hex(b[0], absl::kZeroPad2), " ", absl::Hex(b[1], absl::kZeroPad2)));
  }
  if (b[2] != 0x08) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": unsupported IDX data type 0x", absl::Hex(b[2], absl::kZeroPad2),
                     " at byte offset 2: only 0x08 (unsigned byte) is supported"));
  }
  const int ndims = b[3];
  if (ndims == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": IDX file has 0 dimensions (byte offset 3)"));
  }
  const size_t header = 4 + 4 * static_cast<size_t>(ndims);
  if (bytes.size() < header) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": truncated IDX header: ", ndims, " dimensions need ", header,
                     " bytes, file ends at byte offset ", bytes.size()));
  }
  IdxHeader array;
  uint64_t count = 1;
  for (int i = 0; i < ndims; ++i) {
    const uint8_t* d = b + 4 + 4 * i;
    const uint64_t dim =
        (uint64_t{d[0]} << 24) | (uint64_t{d[1]} << 16) | (uint64_t{d[2]} << 8) | d[3];
    array.dims.push_back(static_cast<int64_t>(dim));
    count *= dim;
    if (count > (uint64_t{1} << 40)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": implausible IDX dimensions at byte offset ", 4 + 4 * i));
    }
  }
  const uint64_t expected = header + count;
  if (bytes.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, bytes.size() < expected ? ": truncated IDX data" : ": trailing bytes after IDX data",
        ": dimensions [", absl::StrJoin(array.dims, ", "), "] need ", expected,
        " bytes, data ends at byte offset ", bytes.size()));
  }
  array.bytes = header;
  array.count = count;
  return array;
}

}  // namespace

absl::StatusOr<IdxArray> ParseIdx(absl::string_view bytes, const std::string& path) {
  ASSIGN_OR_RETURN(IdxHeader header, ParseIdxHeader(bytes, path));
  IdxArray array;
  array.dims = std::move(header.dims);
  array.data.assign(bytes.begin() + header.bytes, bytes.end());
  return array;
}

absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path, const std::atomic<bool>* stop) {
  return IdxFileReader(path).Read(stop);
}

IdxFileReader::IdxFileReader(std::string path) : path_(std::move(path)) {}

IdxFileReader::~IdxFileReader() {
  if (inflating_) inflateEnd(&zs_);
}

absl::Status IdxFileReader::Cancelled() const {
  return absl::CancelledError(
      absl::StrCat(path_, ": reading stopped after ", pieces_, " pieces; it goes on from there"));
}

absl::Status IdxFileReader::ReadFile(const std::atomic<bool>* stop) {
  if (!opened_) {
    in_.open(path_, std::ios::binary);
    if (!in_) return absl::FailedPreconditionError(absl::StrCat(path_, ": cannot open file"));
    opened_ = true;
    // Reserved up front (address space only), so growing never copies the
    // bytes read so far in one long piece.
    in_.seekg(0, std::ios::end);
    const std::streamoff size = in_.tellg();
    in_.seekg(0, std::ios::beg);
    if (size > 0) raw_.reserve(static_cast<size_t>(size) + kFilePiece);
  }
  while (!file_done_) {
    const size_t at = raw_.size();
    raw_.resize(at + kFilePiece);
    in_.read(raw_.data() + at, kFilePiece);
    raw_.resize(at + static_cast<size_t>(in_.gcount()));
    ++pieces_;
    if (in_.eof()) {
      file_done_ = true;
    } else if (!in_) {
      return absl::FailedPreconditionError(
          absl::StrCat(path_, ": read error at byte offset ", raw_.size()));
    } else if (Raised(stop)) {
      return Cancelled();
    }
  }
  return absl::OkStatus();
}

absl::Status IdxFileReader::Inflate(const std::atomic<bool>* stop) {
  if (!inflating_) {
    if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) {
      return absl::InternalError(absl::StrCat(path_, ": inflateInit2 failed"));
    }
    inflating_ = true;
    // gzip's trailer holds the inflated size mod 2^32 (RFC 1952, ISIZE);
    // reserved up front for the same reason as raw_. Bounded by deflate's
    // best ratio (1032:1), as the trailer is only a claim.
    if (raw_.size() >= 18) {
      const auto* t = reinterpret_cast<const uint8_t*>(raw_.data() + raw_.size() - 4);
      const uint64_t isize =
          uint64_t{t[0]} | (uint64_t{t[1]} << 8) | (uint64_t{t[2]} << 16) | (uint64_t{t[3]} << 24);
      unzipped_.reserve(static_cast<size_t>(std::min<uint64_t>(isize, 1032 * raw_.size())));
    }
    zs_.next_in = reinterpret_cast<Bytef*>(raw_.data());
    zs_.avail_in = static_cast<uInt>(raw_.size());
  }
  char chunk[kInflatePiece];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs_.next_out = reinterpret_cast<Bytef*>(chunk);
    zs_.avail_out = sizeof(chunk);
    rc = inflate(&zs_, Z_NO_FLUSH);
    unzipped_.append(chunk, sizeof(chunk) - zs_.avail_out);
    ++pieces_;
    if (rc == Z_BUF_ERROR && zs_.avail_in == 0) break;
    if (rc == Z_OK && Raised(stop)) return Cancelled();
  }
  if (rc == Z_STREAM_END) {
    inflated_ = true;
    raw_ = std::string();  // the compressed bytes are no longer needed
    inflateEnd(&zs_);
    inflating_ = false;
    return absl::OkStatus();
  }
  if (rc == Z_BUF_ERROR || rc == Z_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": truncated gzip stream: compressed data ends at byte offset ",
                     zs_.total_in, " after ", unzipped_.size(), " decompressed bytes"));
  }
  return absl::InvalidArgumentError(absl::StrCat(path_,
                                                 ": corrupt gzip stream at compressed byte offset ",
                                                 zs_.total_in, ": ", zs_.msg ? zs_.msg : ""));
}

absl::StatusOr<IdxArray> IdxFileReader::Read(const std::atomic<bool>* stop) {
  if (!failed_.ok()) return failed_;
  if (returned_) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": already read"));
  }
  absl::Status status = ReadFile(stop);
  if (status.ok() && !inflated_ && IsGzip(raw_)) status = Inflate(stop);
  if (status.ok()) status = CopyData(stop);
  if (!status.ok()) {
    if (!absl::IsCancelled(status)) failed_ = status;
    return status;
  }
  returned_ = true;
  raw_ = std::string();
  unzipped_ = std::string();
  IdxArray array = std::move(*array_);
  array_.reset();
  return array;
}

absl::Status IdxFileReader::CopyData(const std::atomic<bool>* stop) {
  const std::string& bytes = inflated_ ? unzipped_ : raw_;
  if (!array_) {
    ASSIGN_OR_RETURN(IdxHeader header, ParseIdxHeader(bytes, path_));
    array_.emplace();
    array_->dims = std::move(header.dims);
    array_->data.reserve(header.count);  // address space only: no page is touched yet
    header_bytes_ = header.bytes;
  }
  // Copied in pieces: filling fresh pages is page faults, 47 MB of them
  // (the training images) took 0.13 s in one piece.
  std::vector<uint8_t>& data = array_->data;
  const size_t total = bytes.size() - header_bytes_;
  while (data.size() < total) {
    const size_t at = header_bytes_ + data.size();
    const size_t n = std::min(kFilePiece, total - data.size());
    data.insert(data.end(), bytes.begin() + at, bytes.begin() + at + n);
    ++pieces_;
    if (data.size() < total && Raised(stop)) return Cancelled();
  }
  return absl::OkStatus();
}

}  // namespace nightshift
