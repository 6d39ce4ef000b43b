// Fuzz target: the PeerChunk decoder on arbitrary bytes, split into gRPC
// slices at a point the first byte chooses (chunks arrive in any slicing).
#include <cstdint>
#include <vector>

#include "collective/transport/grpc/peer_chunk_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t cut = 1 + data[0] % size;
  std::vector<grpc::Slice> slices;
  slices.emplace_back(data + 1, cut - 1);
  slices.emplace_back(data + cut, size - cut);
  grpc::ByteBuffer buffer(slices.data(), slices.size());
  (void)nightshift::collective::DecodePeerChunk(buffer);
  return 0;
}
