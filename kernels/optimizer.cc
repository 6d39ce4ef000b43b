#include "kernels/optimizer.h"

#include <cmath>

#include "kernels/threads.h"

namespace nightshift {
namespace {

// Runs body(i) for every i in [begin, end), vectorised, on the OpenMP
// pool. With one compute thread the loop runs here instead: in a parallel
// region of one thread the same update ran 1.7× slower (a half update of
// the MLP of examples/: 83–85 µs against 48–50), and each region costs
// libgomp's team set-up besides, paid 16 times a step by the sharded step
// (collective/shared_step.h), which updates one 64 KiB chunk at a time.
template <typename Body>
void ForEachElement(int64_t begin, int64_t end, Body body) {
  if (ComputeThreads() == 1) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) body(i);
    return;
  }
#pragma omp parallel for simd schedule(static)
  for (int64_t i = begin; i < end; ++i) body(i);
}

class Sgd final : public Optimizer {
 public:
  Sgd(const v1::SgdOptimizer& spec, int64_t n)
      : momentum_(spec.momentum()),
        nesterov_(spec.nesterov()),
        weight_decay_(spec.weight_decay()),
        buffer_(Shape{momentum_ > 0 ? n : 0}) {}

  void Update(absl::Span<float> params, absl::Span<const float> grads, float lr, float grad_scale,
              int64_t begin, int64_t end) override {
    float* p = params.data();
    const float* g = grads.data();
    float* buf = buffer_.data();
    const float mu = momentum_, wd = weight_decay_, gs = grad_scale;
    const bool nesterov = nesterov_;
    if (momentum_ == 0) {
      ForEachElement(begin, end, [=](int64_t i) { p[i] -= lr * (gs * g[i] + wd * p[i]); });
    } else if (steps_ == 1) {  // the first step: buf = d
      ForEachElement(begin, end, [=](int64_t i) {
        const float d = gs * g[i] + wd * p[i];
        buf[i] = d;
        p[i] -= lr * (nesterov ? d + mu * d : d);
      });
    } else {
      ForEachElement(begin, end, [=](int64_t i) {
        const float d = gs * g[i] + wd * p[i];
        const float b = mu * buf[i] + d;
        buf[i] = b;
        p[i] -= lr * (nesterov ? d + mu * b : b);
      });
    }
  }

  std::vector<OptimizerState> State() override {
    if (momentum_ == 0) return {};
    return {{"momentum_buffer", &buffer_}};
  }

 private:
  float momentum_;
  bool nesterov_;
  float weight_decay_;
  Tensor buffer_;
};

class AdamW final : public Optimizer {
 public:
  AdamW(const v1::AdamWOptimizer& spec, int64_t n)
      : beta1_(spec.has_beta1() ? spec.beta1() : 0.9f),
        beta2_(spec.has_beta2() ? spec.beta2() : 0.999f),
        eps_(spec.has_eps() ? spec.eps() : 1e-8f),
        weight_decay_(spec.has_weight_decay() ? spec.weight_decay() : 0.01f),
        exp_avg_(Shape{n}),
        exp_avg_sq_(Shape{n}) {}

  void Update(absl::Span<float> params, absl::Span<const float> grads, float lr, float grad_scale,
              int64_t begin, int64_t end) override {
    float* p = params.data();
    const float* g = grads.data();
    float* m = exp_avg_.data();
    float* v = exp_avg_sq_.data();
    const float b1 = beta1_, b2 = beta2_, eps = eps_, gs = grad_scale;
    const float decay = 1.f - lr * weight_decay_;
    const double t = static_cast<double>(steps_);
    const float bias1 = static_cast<float>(1.0 - std::pow(b1, t));
    const float bias2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(b2, t)));
    const float step_size = lr / bias1;
    ForEachElement(begin, end, [=](int64_t i) {
      p[i] *= decay;
      const float gi = gs * g[i];
      m[i] = b1 * m[i] + (1.f - b1) * gi;
      v[i] = b2 * v[i] + (1.f - b2) * gi * gi;
      p[i] -= step_size * m[i] / (std::sqrt(v[i]) / bias2_sqrt + eps);
    });
  }

  std::vector<OptimizerState> State() override {
    return {{"exp_avg", &exp_avg_}, {"exp_avg_sq", &exp_avg_sq_}};
  }

 private:
  float beta1_, beta2_, eps_, weight_decay_;
  Tensor exp_avg_, exp_avg_sq_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Optimizer>> MakeOptimizer(const v1::OptimizerSpec& spec,
                                                         int64_t num_parameters) {
  switch (spec.kind_case()) {
    case v1::OptimizerSpec::kSgd:
      return std::make_unique<Sgd>(spec.sgd(), num_parameters);
    case v1::OptimizerSpec::kAdamw:
      return std::make_unique<AdamW>(spec.adamw(), num_parameters);
    case v1::OptimizerSpec::KIND_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("optimizer: set sgd or adamw");
}

float BaseLearningRate(const v1::OptimizerSpec& spec) {
  return spec.has_sgd() ? spec.sgd().lr() : spec.adamw().lr();
}

}  // namespace nightshift
