// ForwardingTransport: a Transport that passes every call to another one —
// the base of wrappers that change one thing (a test's injected fault, an
// observer) and forward the rest, group memory included. Owns the wrapped transport; threading
// and failure rules are the wrapped one's.
#ifndef NIGHTSHIFT_COLLECTIVE_TRANSPORT_FORWARDING_TRANSPORT_H_
#define NIGHTSHIFT_COLLECTIVE_TRANSPORT_FORWARDING_TRANSPORT_H_

#include <memory>
#include <set>

#include "collective/transport/group_memory.h"
#include "collective/transport/transport.h"

namespace nightshift::collective {

class ForwardingTransport : public Transport, public GroupMemoryTransport {
 public:
  explicit ForwardingTransport(std::unique_ptr<Transport> inner) : inner_(std::move(inner)) {}

  using Transport::Send;
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  absl::Status Send(int to, uint64_t tag, absl::Span<const absl::string_view> parts,
                    absl::Time deadline) override {
    return inner_->Send(to, tag, parts, deadline);
  }
  absl::Status RecvWith(int from, uint64_t tag, size_t expected_bytes, absl::Time deadline,
                        const ConsumeParts& consume) override {
    return inner_->RecvWith(from, tag, expected_bytes, deadline, consume);
  }
  absl::Status RecvInto(int from, uint64_t tag, absl::Span<const absl::Span<char>> into,
                        absl::Time deadline) override {
    return inner_->RecvInto(from, tag, into, deadline);
  }
  absl::Status Flush(absl::Time deadline) override { return inner_->Flush(deadline); }
  void Abort(const absl::Status& reason) override { inner_->Abort(reason); }
  std::set<int> AwaitAborts(int count, absl::Time deadline) override {
    return inner_->AwaitAborts(count, deadline);
  }
  // The wrapped transport's group memory, if it has that capability.
  bool CanMapGroupMemory() const override {
    auto* m = dynamic_cast<GroupMemoryTransport*>(inner_.get());
    return m != nullptr && m->CanMapGroupMemory();
  }
  absl::StatusOr<GroupMemory*> MapGroupMemory(size_t bytes_per_rank, absl::Time deadline) override {
    auto* m = dynamic_cast<GroupMemoryTransport*>(inner_.get());
    if (m == nullptr) return absl::UnimplementedError("the wrapped transport maps no memory");
    return m->MapGroupMemory(bytes_per_rank, deadline);
  }

 private:
  std::unique_ptr<Transport> inner_;
};

}  // namespace nightshift::collective

#endif  // NIGHTSHIFT_COLLECTIVE_TRANSPORT_FORWARDING_TRANSPORT_H_
