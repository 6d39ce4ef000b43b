// ModelFollower: an edge agent's copies of the published models it follows
// (nightshift-worker --follow_models; coordinator/model_registry.h is the
// coordinator's side) — the end of the loop that brings what the fleet
// trained back to the vehicles, for inference on the same computer.
//
// On disk, under options.dir, per followed name:
//   NAME/vN.safetensors           a complete, verified version (the current
//                                 one is the highest N)
//   NAME/vN.safetensors.partial   a download under way: its size is where
//                                 the next piece starts
//
// The protocol:
//  1. Every heartbeat names each followed model and the version held
//     (Held(); 0: none), and its reply offers the newest version where it
//     is newer (Offer()).
//  2. While the vehicle may download (the idle policy says it is eligible
//     and its link is unmetered: v1.Eligibility), FetchOffered() asks for
//     the offered version's bytes from the partial file's size on
//     (FetchModel), appending each piece, until the file has its size. A
//     lapse (ignition on, a metered link) or a cut stops it between
//     pieces; it goes on from there later, also after a restart. A partial
//     file of another version than the one offered is dropped.
//  3. Complete: its SHA-256 must be the offer's and it must load as a
//     model (checkpoint/model_file.h); otherwise it is deleted and — if
//     the download had been resumed from a partial file, whose tail a
//     power cut may have lost — fetched again whole; if not, the refusal
//     is logged and counted, and that version is not tried again for
//     retry_after_refusal. The version held so far stays current.
//  4. Verified: the bytes are written durably as vN.safetensors
//     (base/filesystem.h: temporary file, fsync, rename, folder fsync) —
//     from then on it is the current version — and only then are older
//     versions deleted. So a complete, verified version is on disk at
//     every moment once one was fetched. (The whole file is held in memory
//     while it is checked: a model is a few MB.)
//
// Threads: Held() and Offer() from the heartbeat thread; FetchOffered()
// from one thread at a time (Run's, or a test's); CurrentPath() and
// counters() from any. One mutex over the offers and counters; the files
// belong to the fetching thread.
#ifndef NIGHTSHIFT_WORKER_EDGE_MODEL_FOLLOWER_H_
#define NIGHTSHIFT_WORKER_EDGE_MODEL_FOLLOWER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "base/clock.h"
#include "nightshift/v1/coordinator.pb.h"
#include "worker/coordinator_client.h"

namespace nightshift::edge {

struct ModelFollowerOptions {
  std::vector<std::string> models;  // names followed
  std::string dir;                  // where their versions are kept
  int32_t chunk_bytes = 1 << 20;    // per FetchModel call: what a cut can cost
  // A version whose download did not verify waits this long before it is
  // fetched again (a coordinator serving a bad file should not cost a
  // metered vehicle its budget over and over).
  absl::Duration retry_after_refusal = absl::Minutes(10);
};

class ModelFollower {
 public:
  // Finds the versions already held under options.dir (made if missing).
  // `source` and `clock` must outlive it; `may_download` is asked before
  // every piece (any thread).
  static absl::StatusOr<std::unique_ptr<ModelFollower>> Create(ModelFollowerOptions options,
                                                               ModelSource* source, Clock* clock,
                                                               std::function<bool()> may_download);
  ~ModelFollower();  // stops Run's thread
  ModelFollower(const ModelFollower&) = delete;
  ModelFollower& operator=(const ModelFollower&) = delete;

  // Step 1.
  std::vector<v1::FollowedModel> Held() const;
  void Offer(const google::protobuf::RepeatedPtrField<v1::ModelVersion>& updates);

  // Steps 2-4 for every offered version, as far as may_download() lets
  // them go. OK when there was nothing to do or it stopped to wait; the
  // first error otherwise (a refused download, an unreachable
  // coordinator), the rest still tried.
  absl::Status FetchOffered();

  // A thread that calls FetchOffered() after every offer and every
  // `poll` (so a vehicle that becomes eligible goes on), until destroyed.
  void Start(absl::Duration poll = absl::Seconds(5));
  // Wakes Run's thread now (the vehicle may download again).
  void Wake();

  // The current version's file of `name`; "" if none yet.
  std::string CurrentPath(const std::string& name) const;
  struct Counters {
    int64_t versions_fetched = 0;  // verified and made current
    int64_t bytes_fetched = 0;     // pieces received
    int64_t refused = 0;           // complete downloads that did not verify
  };
  Counters counters() const;

 private:
  ModelFollower(ModelFollowerOptions options, ModelSource* source, Clock* clock,
                std::function<bool()> may_download)
      : options_(std::move(options)),
        source_(source),
        clock_(clock),
        may_download_(std::move(may_download)) {}
  // Steps 2-4 for one offered version.
  absl::Status Fetch(const v1::ModelVersion& offer);
  std::string VersionPath(const std::string& name, int64_t version) const;

  const ModelFollowerOptions options_;
  ModelSource* const source_;
  Clock* const clock_;
  const std::function<bool()> may_download_;

  mutable absl::Mutex mu_;
  std::map<std::string, int64_t> held_ ABSL_GUARDED_BY(mu_);              // by name
  std::map<std::string, v1::ModelVersion> offered_ ABSL_GUARDED_BY(mu_);  // newer than held
  // A refused version (name, version) and when it may be tried again.
  std::map<std::pair<std::string, int64_t>, absl::Time> refused_until_ ABSL_GUARDED_BY(mu_);
  Counters counters_ ABSL_GUARDED_BY(mu_);
  bool wake_ ABSL_GUARDED_BY(mu_) = false;

  absl::Notification stop_;
  std::unique_ptr<std::thread> thread_;
};

}  // namespace nightshift::edge

#endif  // NIGHTSHIFT_WORKER_EDGE_MODEL_FOLLOWER_H_
