// Fuzz target: the safetensors reader, and reading every F32 tensor it
// accepts.
#include <cstdint>
#include <string>

#include "checkpoint/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<nightshift::SafetensorsFile> file = nightshift::SafetensorsFile::Parse(
      std::string(reinterpret_cast<const char*>(data), size), "fuzz.safetensors");
  if (!file.ok()) return 0;
  for (const auto& [name, info] : file->tensors()) (void)file->GetFloat32(name);
  return 0;
}
