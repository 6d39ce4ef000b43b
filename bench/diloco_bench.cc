// diloco_bench: one diloco job trained in this process by the real parts
// (tests/in_process_diloco.h: the coordinator's RoundKeeper with its
// aggregation and outer optimizer; for every replica the agent's
// RoundClient and ReplicaTrainer with the delta codec and error
// feedback), one replica after another in each round, so a figure here
// is the algorithm's (accuracy, bytes on the wire), not a network's.
// bench/run_diloco.sh runs it beside the synchronous job.
//
//   diloco_bench --spec=JOB.textproto [--attack=none|sign_flip|scale100|nan|alie]
//                [--poisoned=M] [--curve=FILE.csv] [--threads=1]
//
// The spec is a diloco job (ValidateJobSpec); its replicas are
// max_workers (one shard each), the quorum is all of them. With an attack,
// the last M replicas are poisoned (tests/poisoned_round_service.h).
// Prints one JSON line: test accuracy, rounds, per-replica bytes fetched
// and pushed, refusals, seconds. --curve gets "round,bytes_per_replica,
// test_accuracy" after every round.
#include <cstdio>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kernels/threads.h"
#include "spec/diloco.h"
#include "spec/job_spec.h"
#include "tests/in_process_diloco.h"

ABSL_FLAG(std::string, spec, "", "diloco job spec (textproto)");
ABSL_FLAG(std::string, attack, "none", "none | sign_flip | scale100 | nan | alie");
ABSL_FLAG(int, poisoned, 0, "how many replicas (the last ones) the attack poisons");
ABSL_FLAG(std::string, curve, "", "write round,bytes_per_replica,test_accuracy here");
ABSL_FLAG(int, threads, 1, "compute threads");

namespace nightshift {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "diloco_bench: %s\n", std::string(status.message()).c_str());
  return 1;
}

int Run() {
  SetComputeThreads(absl::GetFlag(FLAGS_threads));
  absl::StatusOr<v1::JobSpec> spec = LoadJobSpec(absl::GetFlag(FLAGS_spec));
  if (!spec.ok()) return Fail(spec.status());
  absl::StatusOr<Attack> attack = ParseAttack(absl::GetFlag(FLAGS_attack));
  if (!attack.ok()) return Fail(attack.status());
  const DiLoCoSettings settings = ResolveDiLoCo(*spec);
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<InProcessDiLoCo>> job =
      InProcessDiLoCo::Create(*spec, *attack, absl::GetFlag(FLAGS_poisoned));
  if (!job.ok()) return Fail(job.status());
  std::ofstream curve;
  if (!absl::GetFlag(FLAGS_curve).empty()) {
    curve.open(absl::GetFlag(FLAGS_curve));
    curve << "round,bytes_per_replica,test_accuracy\n";
  }
  absl::StatusOr<InProcessDiLoCoResult> result =
      (*job)->Run(curve.is_open(), [&](int64_t round, int64_t bytes, float accuracy) {
        if (curve.is_open()) curve << round << "," << bytes << "," << accuracy << "\n";
      });
  if (!result.ok()) return Fail(result.status());
  const int replicas = (*job)->replicas();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf(
      "{\"replicas\": %d, \"num_parameters\": %lld, \"inner_steps\": %d, \"rounds\": %d, "
      "\"replica_batch\": %d, "
      "\"dirichlet_alpha\": %g, \"delta\": \"%s\", \"parameters\": \"%s\", "
      "\"aggregation\": \"%s\", \"attack\": \"%s\", \"poisoned\": %d, \"test_accuracy\": %.4f, "
      "\"bytes_fetched_per_replica\": %lld, \"bytes_pushed_per_replica\": %lld, "
      "\"refused\": %d, \"attacks_sent\": %d, \"seconds\": %.1f}\n",
      replicas, static_cast<long long>((*job)->num_parameters()), settings.inner_steps,
      result->rounds, settings.replica_batch_size, settings.dirichlet_alpha,
      v1::DeltaEncoding_Name(settings.delta_encoding).c_str(),
      v1::WireDtype_Name(settings.parameter_dtype).c_str(),
      v1::Aggregation_Name(settings.aggregation).c_str(), AttackName(*attack),
      absl::GetFlag(FLAGS_poisoned), result->test_accuracy,
      static_cast<long long>(result->bytes_fetched / replicas),
      static_cast<long long>(result->bytes_pushed / replicas), result->refused,
      (*job)->attacks_sent(), seconds);
  return 0;
}

}  // namespace
}  // namespace nightshift

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return nightshift::Run();
}
