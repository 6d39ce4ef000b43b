// The `nightshift` command: client of a coordinator (submit, list, status,
// watch, cancel, workers, drain, export; see cli/client_commands.h) and a local
// trainer:
//
//   nightshift train --local JOB_SPEC [--out=DIR] [--resume=CHECKPOINT]
//                    [--threads=N]
//       Trains in this process, with a live progress line, and prints the
//       final test accuracy. Writes checkpoints and model.safetensors to
//       --out.
//
// Exit codes: 0 success, 1 the job failed, 2 bad usage or input.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "cli/client_commands.h"
#include "cli/progress_line.h"
#include "kernels/threads.h"
#include "spec/job_spec.h"
#include "worker/trainer.h"

ABSL_FLAG(bool, local, false, "train: run the job in this process, no cluster");
ABSL_FLAG(std::string, out, "",
          "train: directory for checkpoints and model.safetensors "
          "(default: out/<spec file name without extension>)");
ABSL_FLAG(std::string, resume, "", "train: a checkpoint to continue from");
ABSL_FLAG(int, threads, 0, "compute threads (0: one per core)");
ABSL_FLAG(int, progress_every, 20, "train: steps between progress reports");
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
    "  token create --role=ROLE [--label=L]  a new token (admin); printed once\n"
    "  token list | token revoke ID          tokens by id, role and worker (admin)\n"
    "  train --local JOB_SPEC                train in this process (--out, --resume, --threads)\n";

std::string DefaultOutDir(const std::string& spec_path) {
  std::string base = spec_path.substr(spec_path.find_last_of('/') + 1);
  base = base.substr(0, base.find('.'));
  return absl::StrCat("out/", base);
}

int Train(const std::vector<std::string>& args) {
  if (!absl::GetFlag(FLAGS_local)) {
    std::cerr << "nightshift train: only --local is supported here; to train on a "
                 "cluster, `nightshift submit JOB_SPEC --coordinator=HOST:PORT`\n";
    return 2;
  }
  if (args.size() != 1) {
    std::cerr << "usage: nightshift train --local JOB_SPEC\n";
    return 2;
  }
  absl::StatusOr<v1::JobSpec> spec = LoadJobSpec(args[0]);
  if (!spec.ok()) {
    std::cerr << "nightshift train: " << spec.status().message() << "\n";
    return 2;
  }
  if (absl::Status s = ValidateJobSpec(*spec); !s.ok()) {
    std::cerr << "nightshift train: " << args[0] << ": invalid job spec: " << s.message() << "\n";
    return 2;
  }
  SetComputeThreads(absl::GetFlag(FLAGS_threads));
  const bool tty = isatty(fileno(stderr));
  TrainerOptions options;
  options.out_dir =
      absl::GetFlag(FLAGS_out).empty() ? DefaultOutDir(args[0]) : absl::GetFlag(FLAGS_out);
  options.resume_path = absl::GetFlag(FLAGS_resume);
  options.progress_interval_steps = std::max(1, absl::GetFlag(FLAGS_progress_every));
  options.on_evaluation = [tty](const v1::Progress& p) {
    std::fprintf(stderr, "%s%s\n", tty ? "\r\033[K" : "", FormatEvaluationLine(p).c_str());
  };
  options.on_progress = [tty](const v1::Progress& p) {
    if (tty) {
      std::fprintf(stderr, "\r\033[K%s", FormatProgressLine(p).c_str());
    } else {
      std::fprintf(stderr, "%s\n", FormatProgressLine(p).c_str());
    }
    std::fflush(stderr);
  };
  std::fprintf(stderr, "nightshift: training %s with %d threads, writing to %s\n", args[0].c_str(),
               ComputeThreads(), options.out_dir.c_str());
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*spec, options);
  if (!trainer.ok()) {
    std::cerr << "nightshift train: " << trainer.status().message() << "\n";
    return 1;
  }
  absl::StatusOr<TrainResult> result = (*trainer)->Run();
  if (!result.ok()) {
    std::cerr << "\nnightshift train: " << result.status().message() << "\n";
    return 1;
  }
  std::printf("final test accuracy: %.2f%% (test loss %.4f) after %lld steps\n",
              100 * result->test_accuracy, result->test_loss,
              static_cast<long long>(result->steps));
  if (!result->model_path.empty()) std::printf("model: %s\n", result->model_path.c_str());
  return 0;
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string command = positional[1];
  std::vector<std::string> args(positional.begin() + 2, positional.end());
  if (command == "train") return Train(args);
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
