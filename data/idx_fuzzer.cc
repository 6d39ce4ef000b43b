// Fuzz target: the IDX reader (raw and gzip) on arbitrary bytes.
#include <cstdint>

#include "data/idx_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)nightshift::ParseIdx(absl::string_view(reinterpret_cast<const char*>(data), size),
                             "fuzz.idx");
  return 0;
}
