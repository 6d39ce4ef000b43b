#include "kernels/softmax_cross_entropy.h"

#include <cmath>

namespace nightshift {

SoftmaxCrossEntropy::Primitives& SoftmaxCrossEntropy::For(int64_t n, int64_t k) {
  auto key = std::make_pair(n, k);
  auto it = primitives_.find(key);
  if (it != primitives_.end()) return it->second;
  dnnl::memory::desc md = PlainDesc({n, k});
  dnnl::logsoftmax_forward::primitive_desc pd(
      dnnl::logsoftmax_forward::desc(dnnl::prop_kind::forward_inference, md, 1),
      context_->engine());
  Primitives p{dnnl::logsoftmax_forward(pd), UnboundMemory(md, context_->engine()),
               UnboundMemory(md, context_->engine())};
  return primitives_.emplace(key, std::move(p)).first->second;
}

LossResult SoftmaxCrossEntropy::Compute(const Tensor& logits, absl::Span<const int32_t> labels,
                                        float grad_scale, Tensor* dlogits) {
  const int64_t n = logits.dim(0), k = logits.dim(1);
  Primitives& p = For(n, k);
  log_probs_.Resize(logits.shape());
  context_->Run(p.forward,
                {{DNNL_ARG_SRC, Bind(p.src, logits)}, {DNNL_ARG_DST, Bind(p.dst, log_probs_)}});
  LossResult result;
  if (dlogits != nullptr) dlogits->Resize(logits.shape());
  for (int64_t i = 0; i < n; ++i) {
    const float* row = log_probs_.data() + i * k;
    const int32_t label = labels[i];
    result.loss_sum -= row[label];
    int64_t best = 0;
    for (int64_t j = 1; j < k; ++j) {
      if (row[j] > row[best]) best = j;
    }
    if (best == label) ++result.correct;
    if (dlogits != nullptr) {
      float* g = dlogits->data() + i * k;
      for (int64_t j = 0; j < k; ++j) g[j] = grad_scale * std::exp(row[j]);
      g[label] -= grad_scale;
    }
  }
  return result;
}

}  // namespace nightshift
