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
//
// IdxFileReader reads in pieces that survive a stop: an edge agent's
// start-up is compute too, and a vehicle's owner may take it back many
// times before one load finishes (bench/run_edge_agent.sh).
#ifndef NIGHTSHIFT_DATA_IDX_READER_H_
#define NIGHTSHIFT_DATA_IDX_READER_H_

#include <zlib.h>

#include <atomic>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nightshift {

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;  // row-major, prod(dims) bytes
};

// With `stop`, a raised flag ends the read with CANCELLED (IdxFileReader).
absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path,
                                     const std::atomic<bool>* stop = nullptr);

// One IDX file read in pieces: the file in 1 MiB pieces, then a gzip
// stream inflated 64 KiB at a time, then the data copied out 1 MiB at a
// time. Read() goes on from where the last
// call ended; after each piece it reads `stop`, and a raised flag returns
// CANCELLED with the work so far kept (call Read again to go on). Any
// other error is final: Read returns it again. The array is returned
// once; a later Read is FAILED_PRECONDITION. Not thread-safe.
class IdxFileReader {
 public:
  explicit IdxFileReader(std::string path);
  ~IdxFileReader();
  IdxFileReader(const IdxFileReader&) = delete;
  IdxFileReader& operator=(const IdxFileReader&) = delete;

  absl::StatusOr<IdxArray> Read(const std::atomic<bool>* stop);

  // Pieces done so far (file, gzip and copy), for tests and logs.
  int64_t pieces() const { return pieces_; }

 private:
  absl::Status ReadFile(const std::atomic<bool>* stop);
  absl::Status Inflate(const std::atomic<bool>* stop);
  // Checks the header, then copies the data into array_ in pieces.
  absl::Status CopyData(const std::atomic<bool>* stop);
  absl::Status Cancelled() const;

  const std::string path_;
  std::ifstream in_;
  bool opened_ = false;
  bool file_done_ = false;
  std::string raw_;  // the file's bytes; z_stream points into it
  z_stream zs_{};
  bool inflating_ = false;  // zs_ holds an inflate state (ended in the destructor)
  bool inflated_ = false;
  std::string unzipped_;
  std::optional<IdxArray> array_;  // being filled by CopyData
  size_t header_bytes_ = 0;
  bool returned_ = false;
  absl::Status failed_;
  int64_t pieces_ = 0;
};

// Parses IDX bytes already in memory; `path` is only used in messages.
absl::StatusOr<IdxArray> ParseIdx(absl::string_view bytes, const std::string& path);

}  // namespace nightshift

#endif  // NIGHTSHIFT_DATA_IDX_READER_H_
