// Formats training progress for a terminal: one line that a caller
// rewrites in place ("\r") on a TTY, or prints as a log line otherwise.
// Pure functions.
#ifndef NIGHTSHIFT_CLI_PROGRESS_LINE_H_
#define NIGHTSHIFT_CLI_PROGRESS_LINE_H_

#include <string>

#include "nightshift/v1/status.pb.h"

namespace nightshift {

// "epoch 2  step 1400/4690 [#######.............]  30%  loss 0.4123
//  acc 85.2%  24,311 samples/s"
std::string FormatProgressLine(const v1::Progress& p, int bar_width = 20);

// "epoch 2  test accuracy 87.12%  test loss 0.3567"
std::string FormatEvaluationLine(const v1::Progress& p);

}  // namespace nightshift

#endif  // NIGHTSHIFT_CLI_PROGRESS_LINE_H_
