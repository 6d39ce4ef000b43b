// The `nightshift` command: client of a coordinator (submit, list, status,
// watch, cancel, workers, drain, export; see cli/client_commands.h), a
// trainer without one (cli/train_command.h) and a model runner:
//
//   nightshift train --local JOB_SPEC [--out=DIR] [--resume=CHECKPOINT]
//                    [--threads=N]
//       Trains in this process, with a live progress line, and prints the
//       final test accuracy. Writes checkpoints and model.safetensors to
//       --out.
//   mpirun -np N nightshift train --mpi JOB_SPEC [--out=DIR] [...]
//       The same job as N data-parallel ranks over MPI.
//   nightshift predict MODEL.safetensors IDX_IMAGES [IDX_LABELS]
//       Runs a model file over images (cli/predict_command.h).
//
// Exit codes: 0 success, 1 the job failed, 2 bad usage or input.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "cli/client_commands.h"
#include "cli/predict_command.h"
#include "cli/train_command.h"

ABSL_FLAG(bool, local, false, "train: run the job in this process, no cluster");
ABSL_FLAG(bool, mpi, false, "train: run as one rank of the group mpirun started");
ABSL_FLAG(bool, mpi_native_allreduce, false,
          "train --mpi: sum gradients with MPI_Allreduce instead of Nightshift's ring");
ABSL_FLAG(std::string, out, "",
          "train: directory for checkpoints and model.safetensors "
          "(default: out/<spec file name without extension>)");
ABSL_FLAG(std::string, resume, "", "train: a checkpoint to continue from");
ABSL_FLAG(int, threads, 0,
          "compute threads (0: one per core; under --mpi, the cores shared by this host's ranks)");
ABSL_FLAG(int, progress_every, 20, "train: steps between progress reports");
ABSL_FLAG(int, batch_size, 64, "predict: samples per forward pass");
ABSL_FLAG(int, repeat, 1, "predict: passes over the images (benchmarks)");
ABSL_FLAG(std::string, coordinator, "",
          "coordinator gRPC address (default: the config directory's, else 127.0.0.1:7070)");
ABSL_FLAG(std::string, token, "",
          "bearer token (else --token_file, $NIGHTSHIFT_TOKEN, CONFIG/token)");
ABSL_FLAG(std::string, token_file, "", "file holding the bearer token");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA file (else CONFIG/ca.pem)");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate (else CONFIG/client.pem)");
ABSL_FLAG(std::string, tls_key, "", "PEM client key (else CONFIG/client.key)");
ABSL_FLAG(bool, insecure, false, "dial without TLS (a coordinator started with --insecure)");
ABSL_FLAG(std::string, role, "", "token create: viewer, worker (a join token) or admin");
ABSL_FLAG(std::string, label, "", "token create: a note kept with the token");
ABSL_FLAG(std::string, id, "", "submit: a job id of your choosing (a retried submit reuses it)");
ABSL_FLAG(bool, watch, false, "submit: follow the job until it ends");

namespace nightshift {
namespace {

constexpr char kUsage[] =
    "nightshift COMMAND [flags]\n"
    "\n"
    "Commands (all but train talk to a coordinator: --coordinator=HOST:PORT, a token and TLS\n"
    "files, each from its flag, else the environment, else the config directory\n"
    "$NIGHTSHIFT_CONFIG_DIR or ~/.config/nightshift, which deploy/local_cluster.sh up writes):\n"
    "  submit JOB_SPEC [--id=ID] [--watch]   submit a job; prints its id\n"
    "  list                                  all jobs\n"
    "  status ID                             one job, its checkpoints and history\n"
    "  watch ID                              live progress until the job ends (exit 0: succeeded)\n"
    "  cancel ID                             stop a job\n"
    "  workers                               registered workers\n"
    "  drain WORKER                          the worker (id or name) leaves its job at the\n"
    "                                        next commit point and takes no new one\n"
    "  export ID OUT.safetensors             fetch a finished job's model\n"
    "  publish ID MODEL_NAME                 a succeeded job's model becomes the next version\n"
    "                                        of MODEL_NAME (admin); vehicles that follow it\n"
    "                                        fetch it (nightshift-worker --follow_models)\n"
    "  models [MODEL_NAME]                   published versions\n"
    "  pull MODEL_NAME[:VERSION] OUT         a published version (default: the newest)\n"
    "  token create --role=ROLE [--label=L]  a new token (admin); printed once\n"
    "  token list | token revoke ID          tokens by id, role and worker (admin)\n"
    "  train --local JOB_SPEC                train in this process (--out, --resume, --threads)\n"
    "  train --mpi JOB_SPEC                  one rank of a job mpirun started: mpirun -np N\n"
    "                                        nightshift train --mpi JOB_SPEC [--out=DIR]\n"
    "  predict MODEL IDX_IMAGES [IDX_LABELS] run a model file on images: accuracy, latency\n"
    "                                        (--batch_size, --repeat, --threads)\n";

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string command = positional[1];
  std::vector<std::string> args(positional.begin() + 2, positional.end());
  if (command == "train") {
    TrainFlags train;
    train.local = absl::GetFlag(FLAGS_local);
    train.mpi = absl::GetFlag(FLAGS_mpi);
    train.mpi_native_allreduce = absl::GetFlag(FLAGS_mpi_native_allreduce);
    train.out = absl::GetFlag(FLAGS_out);
    train.resume = absl::GetFlag(FLAGS_resume);
    train.threads = absl::GetFlag(FLAGS_threads);
    train.progress_every = absl::GetFlag(FLAGS_progress_every);
    return RunTrain(args, train, &argc, &argv);
  }
  if (command == "predict") {
    PredictFlags predict;
    predict.batch_size = absl::GetFlag(FLAGS_batch_size);
    predict.repeat = absl::GetFlag(FLAGS_repeat);
    predict.threads = absl::GetFlag(FLAGS_threads);
    return RunPredict(args, predict);
  }
  if (IsClientCommand(command)) {
    ClientFlags flags;
    flags.coordinator = absl::GetFlag(FLAGS_coordinator);
    flags.id = absl::GetFlag(FLAGS_id);
    flags.watch = absl::GetFlag(FLAGS_watch);
    flags.token = absl::GetFlag(FLAGS_token);
    flags.token_file = absl::GetFlag(FLAGS_token_file);
    flags.tls = {absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_tls_cert),
                 absl::GetFlag(FLAGS_tls_key)};
    flags.insecure = absl::GetFlag(FLAGS_insecure);
    flags.role = absl::GetFlag(FLAGS_role);
    flags.label = absl::GetFlag(FLAGS_label);
    return RunClientCommand(command, args, flags);
  }
  std::cerr << "nightshift: unknown command '" << command << "'\n\n" << kUsage;
  return 2;
}

}  // namespace
}  // namespace nightshift

int main(int argc, char** argv) { return nightshift::Main(argc, argv); }
