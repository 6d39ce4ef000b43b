#include "worker/edge/model_follower.h"

#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/filesystem.h"
#include "base/status_macros.h"
#include "checkpoint/model_file.h"
#include "glog/logging.h"
#include "security/tokens.h"

namespace nightshift::edge {
namespace {

constexpr char kSuffix[] = ".safetensors";
// The largest version taken (the coordinator publishes at most this too).
constexpr int64_t kMaxModelBytes = int64_t{1} << 30;
constexpr char kPartialSuffix[] = ".safetensors.partial";

// N of a file named "vN.safetensors" (with `suffix`), or 0.
int64_t VersionOf(const std::string& file_name, absl::string_view suffix) {
  absl::string_view n = file_name;
  int64_t version = 0;
  if (!absl::ConsumePrefix(&n, "v") || !absl::ConsumeSuffix(&n, suffix) ||
      !absl::SimpleAtoi(n, &version) || version <= 0) {
    return 0;
  }
  return version;
}

// The file at `path`, at most `limit` bytes.
absl::StatusOr<std::string> ReadFile(const std::string& path, int64_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::string bytes(static_cast<size_t>(limit) + 1, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  bytes.resize(static_cast<size_t>(in.gcount()));
  return bytes;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelFollower>> ModelFollower::Create(
    ModelFollowerOptions options, ModelSource* source, Clock* clock,
    std::function<bool()> may_download) {
  std::unique_ptr<ModelFollower> f(
      new ModelFollower(std::move(options), source, clock, std::move(may_download)));
  absl::MutexLock lock(&f->mu_);
  for (const std::string& name : f->options_.models) {
    const std::string dir = absl::StrCat(f->options_.dir, "/", name);
    RETURN_IF_ERROR(MakeDirectories(dir));
    int64_t& held = f->held_[name];
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
      held = std::max(held, VersionOf(entry.path().filename().string(), kSuffix));
    }
    if (error) return absl::FailedPreconditionError(absl::StrCat(dir, ": ", error.message()));
    if (held > 0) LOG(INFO) << "model " << name << ": holding version " << held;
  }
  return f;
}

ModelFollower::~ModelFollower() {
  stop_.Notify();
  Wake();
  if (thread_ != nullptr) thread_->join();
}

std::string ModelFollower::VersionPath(const std::string& name, int64_t version) const {
  return absl::StrCat(options_.dir, "/", name, "/v", version, kSuffix);
}

std::vector<v1::FollowedModel> ModelFollower::Held() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::FollowedModel> out;
  for (const auto& [name, version] : held_) {
    v1::FollowedModel& f = out.emplace_back();
    f.set_name(name);
    f.set_version(version);
  }
  return out;
}

void ModelFollower::Offer(const google::protobuf::RepeatedPtrField<v1::ModelVersion>& updates) {
  bool any = false;
  {
    absl::MutexLock lock(&mu_);
    for (const v1::ModelVersion& v : updates) {
      auto held = held_.find(v.name());
      if (held == held_.end() || v.version() <= held->second) continue;  // not followed, or old
      auto [it, added] = offered_.emplace(v.name(), v);
      if (!added && it->second.version() >= v.version()) continue;
      it->second = v;
      any = true;
    }
    wake_ = wake_ || any;
  }
}

void ModelFollower::Wake() {
  absl::MutexLock lock(&mu_);
  wake_ = true;
}

absl::Status ModelFollower::FetchOffered() {
  std::vector<v1::ModelVersion> offers;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    for (const auto& [name, v] : offered_) {
      auto refused = refused_until_.find({name, v.version()});
      if (refused != refused_until_.end() && now < refused->second) continue;
      offers.push_back(v);
    }
  }
  absl::Status first;
  for (const v1::ModelVersion& offer : offers) {
    absl::Status s = Fetch(offer);
    if (!s.ok()) {
      LOG(WARNING) << "model " << offer.name() << " v" << offer.version() << ": " << s;
      first.Update(s);
    }
  }
  return first;
}

// Steps 2-4 (model_follower.h).
absl::Status ModelFollower::Fetch(const v1::ModelVersion& offer) {
  const std::string path = VersionPath(offer.name(), offer.version());
  const std::string partial = absl::StrCat(path, ".partial");
  // 2. From where the partial file stops; other versions' partials go.
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator(absl::StrCat(options_.dir, "/", offer.name()), error)) {
    const std::string file = entry.path().filename().string();
    if (VersionOf(file, kPartialSuffix) != 0 && entry.path().string() != partial) {
      std::filesystem::remove(entry.path(), error);
    }
  }
  if (offer.size_bytes() < 0 || offer.size_bytes() > kMaxModelBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("offered ", offer.size_bytes(), " bytes: not in [0, ", kMaxModelBytes, "]"));
  }
  const std::uintmax_t held = std::filesystem::file_size(partial, error);
  int64_t offset = error ? 0 : static_cast<int64_t>(held);
  if (offset > offer.size_bytes()) {
    std::filesystem::remove(partial, error);
    offset = 0;
  }
  const bool resumed = offset > 0;
  {
    std::ofstream out;  // opened with the first piece: no file before a byte came
    while (offset < offer.size_bytes()) {
      if (stop_.HasBeenNotified() || !may_download_()) return absl::OkStatus();  // later
      v1::FetchModelRequest request;
      request.set_model_name(offer.name());
      request.set_version(offer.version());
      request.set_offset(offset);
      request.set_max_bytes(options_.chunk_bytes);
      ASSIGN_OR_RETURN(v1::FetchModelResponse piece, source_->FetchModel(request));
      if (piece.version().sha256() != offer.sha256() || piece.offset() != offset ||
          piece.data().empty()) {
        out.close();
        std::filesystem::remove(partial, error);
        return absl::FailedPreconditionError(
            absl::StrCat("the coordinator's v", offer.version(), " is not the one offered (sha256 ",
                         piece.version().sha256(), ", offset ", piece.offset(), ", ",
                         piece.data().size(), " bytes at ", offset, "): starting again"));
      }
      if (!out.is_open()) {
        out.open(partial, std::ios::binary | std::ios::app);
        if (!out) return absl::FailedPreconditionError(absl::StrCat(partial, ": cannot write"));
      }
      out.write(piece.data().data(), static_cast<std::streamsize>(piece.data().size()));
      out.flush();
      if (!out) return absl::DataLossError(absl::StrCat(partial, ": write failed"));
      offset += static_cast<int64_t>(piece.data().size());
      absl::MutexLock lock(&mu_);
      counters_.bytes_fetched += static_cast<int64_t>(piece.data().size());
    }
  }
  // 3. Verified, or refused (the version held stays current).
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(partial, offer.size_bytes()));
  std::string refusal;
  const std::string sha256 = security::Sha256Hex(bytes);
  if (static_cast<int64_t>(bytes.size()) != offer.size_bytes() || sha256 != offer.sha256()) {
    refusal =
        absl::StrCat("the download's SHA-256 is ", sha256, " over ", bytes.size(),
                     " bytes; the version's is ", offer.sha256(), " over ", offer.size_bytes());
  } else if (absl::StatusOr<LoadedModel> model = LoadModelFile(partial); !model.ok()) {
    refusal = std::string(model.status().message());
  }
  if (!refusal.empty()) {
    std::filesystem::remove(partial, error);
    if (resumed) {
      // The part held from before (a power cut can leave its last pieces
      // unwritten) may be what is wrong: once more from the start before
      // the version is refused.
      return absl::UnavailableError(
          absl::StrCat("a resumed download did not verify (", refusal, "); fetching it whole"));
    }
    absl::MutexLock lock(&mu_);
    ++counters_.refused;
    refused_until_[{offer.name(), offer.version()}] = clock_->Now() + options_.retry_after_refusal;
    return absl::DataLossError(
        absl::StrCat("refused (kept v", held_[offer.name()], "): ", refusal));
  }
  // 4. Current, then the older versions go.
  RETURN_IF_ERROR(WriteFileDurably(path, bytes));
  std::filesystem::remove(partial, error);
  int64_t previous = 0;
  {
    absl::MutexLock lock(&mu_);
    previous = held_[offer.name()];
    held_[offer.name()] = offer.version();
    auto it = offered_.find(offer.name());
    if (it != offered_.end() && it->second.version() <= offer.version()) offered_.erase(it);
    ++counters_.versions_fetched;
  }
  for (const auto& entry :
       std::filesystem::directory_iterator(absl::StrCat(options_.dir, "/", offer.name()), error)) {
    const int64_t v = VersionOf(entry.path().filename().string(), kSuffix);
    if (v != 0 && v < offer.version()) std::filesystem::remove(entry.path(), error);
  }
  LOG(INFO) << "model " << offer.name() << ": version " << offer.version() << " fetched and "
            << "verified (" << offer.size_bytes() << " bytes, sha256 "
            << offer.sha256().substr(0, 12) << "...), replacing version " << previous;
  return absl::OkStatus();
}

void ModelFollower::Start(absl::Duration poll) {
  thread_ = std::make_unique<std::thread>([this, poll] {
    while (!stop_.HasBeenNotified()) {
      FetchOffered().IgnoreError();  // logged in it; tried again after the next wake
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&wake_), poll);
      wake_ = false;
    }
  });
}

std::string ModelFollower::CurrentPath(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = held_.find(name);
  return it == held_.end() || it->second == 0 ? "" : VersionPath(name, it->second);
}

ModelFollower::Counters ModelFollower::counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

}  // namespace nightshift::edge
