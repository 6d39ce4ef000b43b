#include "data/idx_reader.h"

#include <zlib.h>

#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace nightshift {
namespace {

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": cannot open file"));
  }
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool IsGzip(absl::string_view bytes) {
  return bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0x1f &&
         static_cast<uint8_t>(bytes[1]) == 0x8b;
}

absl::StatusOr<std::string> Gunzip(absl::string_view compressed, const std::string& path,
                                   const std::atomic<bool>* stop) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
    return absl::InternalError(absl::StrCat(path, ": inflateInit2 failed"));
  }
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  zs.avail_in = static_cast<uInt>(compressed.size());
  std::string out;
  char chunk[1 << 16];
  int rc = Z_OK;
  while (rc == Z_OK) {
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) {
      inflateEnd(&zs);
      return absl::CancelledError(absl::StrCat(path, ": reading stopped"));
    }
    zs.next_out = reinterpret_cast<Bytef*>(chunk);
    zs.avail_out = sizeof(chunk);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(chunk, sizeof(chunk) - zs.avail_out);
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;
  }
  const uint64_t at = zs.total_in;
  const std::string msg = zs.msg ? zs.msg : "";
  inflateEnd(&zs);
  if (rc == Z_STREAM_END) return out;
  if (rc == Z_BUF_ERROR || rc == Z_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": truncated gzip stream: compressed data ends at byte offset ", at,
                     " after ", out.size(), " decompressed bytes"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": corrupt gzip stream at compressed byte offset ", at, ": ", msg));
}

}  // namespace

absl::StatusOr<IdxArray> ParseIdx(absl::string_view bytes, const std::string& path) {
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
  IdxArray array;
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
  array.data.assign(b + header, b + expected);
  return array;
}

absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path, const std::atomic<bool>* stop) {
  absl::StatusOr<std::string> raw = ReadWholeFile(path);
  if (!raw.ok()) return raw.status();
  if (IsGzip(*raw)) {
    absl::StatusOr<std::string> unzipped = Gunzip(*raw, path, stop);
    if (!unzipped.ok()) return unzipped.status();
    return ParseIdx(*unzipped, path);
  }
  return ParseIdx(*raw, path);
}

}  // namespace nightshift
