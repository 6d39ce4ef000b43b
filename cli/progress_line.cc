#include "cli/progress_line.h"

#include "absl/strings/str_format.h"

namespace nightshift {

std::string FormatProgressLine(const v1::Progress& p, int bar_width) {
  const double fraction = p.total_steps() > 0 ? static_cast<double>(p.step()) / p.total_steps() : 0;
  const int filled = static_cast<int>(fraction * bar_width);
  std::string bar = std::string(filled, '#') + std::string(bar_width - filled, '.');
  std::string line = absl::StrFormat(
      "epoch %d  step %d/%d [%s] %3d%%  loss %.4f  acc %.1f%%  %.0f samples/s", p.epoch() + 1,
      p.step(), p.total_steps(), bar, static_cast<int>(fraction * 100), p.loss(),
      100 * p.train_accuracy(), p.samples_per_second());
  if (p.workers() > 1) absl::StrAppendFormat(&line, "  %d workers", p.workers());
  return line;
}

std::string FormatEvaluationLine(const v1::Progress& p) {
  return absl::StrFormat("epoch %d  step %d/%d  test accuracy %.2f%%  test loss %.4f",
                         p.epoch() + 1, p.step(), p.total_steps(), 100 * p.test_accuracy(),
                         p.test_loss());
}

}  // namespace nightshift
