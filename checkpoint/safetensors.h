// Reading and writing safetensors files, the format PyTorch and NumPy users
// load with `safetensors.torch.load_file` / `safetensors.numpy.load_file`:
//
//   bytes 0..8    N, the header length, unsigned 64-bit little-endian
//   bytes 8..8+N  a UTF-8 JSON object: name -> {"dtype": "F32", "shape":
//                 [..], "data_offsets": [begin, end]}, plus an optional
//                 "__metadata__": {string: string}; padded with spaces so
//                 that the data starts at a multiple of 8
//   the rest      the byte buffer; offsets are relative to its start, and
//                 the tensors cover it exactly, without holes or overlap
//
// The writer emits F32 tensors in insertion order and writes through a
// temporary file renamed into place, so a crash never leaves half a file
// under the final name. The reader checks every rule above and names the
// path, the tensor or the byte offset that breaks one.
#ifndef NIGHTSHIFT_CHECKPOINT_SAFETENSORS_H_
#define NIGHTSHIFT_CHECKPOINT_SAFETENSORS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/tensor.h"

namespace nightshift {

class SafetensorsWriter {
 public:
  // Copies the tensor's data now. Names must be unique.
  void Add(const std::string& name, const Tensor& tensor);
  void AddMetadata(const std::string& key, const std::string& value);
  // Atomic and durable: written to a temporary file, fsynced, renamed into
  // place, the folder fsynced; a failure leaves `path` as it was.
  absl::Status WriteFile(const std::string& path) const;
  // The complete file contents.
  std::string Serialize() const;

 private:
  struct Entry {
    std::string name;
    Shape shape;
    std::string bytes;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

class SafetensorsFile {
 public:
  struct Info {
    std::string dtype;
    Shape shape;
    size_t begin = 0, end = 0;  // offsets into the data buffer
  };

  static absl::StatusOr<SafetensorsFile> Read(const std::string& path);
  // `path` is only used in messages.
  static absl::StatusOr<SafetensorsFile> Parse(std::string contents, const std::string& path);

  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::map<std::string, Info>& tensors() const { return tensors_; }
  // NOT_FOUND if absent; INVALID_ARGUMENT if not F32.
  absl::StatusOr<Tensor> GetFloat32(const std::string& name) const;

 private:
  std::string path_;
  std::string contents_;
  size_t data_start_ = 0;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, Info> tensors_;
};

}  // namespace nightshift

#endif  // NIGHTSHIFT_CHECKPOINT_SAFETENSORS_H_
