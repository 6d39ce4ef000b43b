// HostIdentity: a name for "the memory this process can share". Two
// processes get the same string exactly when they run on one kernel
// (its boot id) and see the same /dev/shm (device and inode of that
// folder: containers with private mounts see different ones), so that a
// file one of them maps under /dev/shm, the other can map too.
//
// Ranks exchange it at rendezvous (the coordinator passes each rank's
// identity with its peer address; FileRendezvous writes it beside the
// address), and transports choose shared memory between ranks whose
// identities match — never by looking at address text. Empty when the
// facts cannot be read: such a rank shares memory with no one.
#ifndef NIGHTSHIFT_BASE_HOST_IDENTITY_H_
#define NIGHTSHIFT_BASE_HOST_IDENTITY_H_

#include <string>

namespace nightshift {

std::string HostIdentity();

}  // namespace nightshift

#endif  // NIGHTSHIFT_BASE_HOST_IDENTITY_H_
