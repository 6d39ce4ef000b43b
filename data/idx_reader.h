// ReadIdxFile: reads an IDX file (the MNIST format), gzip-compressed or raw.
//
// Format (big-endian): two zero bytes, a type byte (only 0x08, unsigned
// byte, is accepted), a byte giving the number of dimensions, one uint32
// per dimension, then the data, exactly prod(dims) bytes. Every problem —
// missing file, corrupt or truncated gzip stream, wrong magic, unsupported
// type, a size that does not match the dimensions — is a
// FAILED_PRECONDITION or INVALID_ARGUMENT error naming the path and the
// byte offset (in the decompressed data for gzip files, whose corruption is
// reported at its compressed offset). Pure function, thread-safe.
#ifndef NIGHTSHIFT_DATA_IDX_READER_H_
#define NIGHTSHIFT_DATA_IDX_READER_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nightshift {

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;  // row-major, prod(dims) bytes
};

// With `stop`, a raised flag ends the read (between 64 KiB pieces of a
// gzip stream) with CANCELLED: an edge agent's start-up is compute too.
absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path,
                                     const std::atomic<bool>* stop = nullptr);

// Parses IDX bytes already in memory; `path` is only used in messages.
absl::StatusOr<IdxArray> ParseIdx(absl::string_view bytes, const std::string& path);

}  // namespace nightshift

#endif  // NIGHTSHIFT_DATA_IDX_READER_H_
