// ReLU (oneDNN eltwise, backward from the output) and Flatten (a reshape).
#include <cstring>
#include <map>

#include "kernels/layer_impls.h"

namespace nightshift::internal {
namespace {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;

class ReluLayer final : public Layer {
 public:
  ReluLayer(const Shape& input, OneDnnContext* context) : shape_(input), context_(context) {}

  const Shape& input_shape() const override { return shape_; }
  const Shape& output_shape() const override { return shape_; }

  void Forward(const Tensor& in, Tensor* out) override {
    Primitives& p = For(in.dim(0));
    out->Resize(in.shape());
    context_->Run(p.forward, {{DNNL_ARG_SRC, Bind(p.src, in)}, {DNNL_ARG_DST, Bind(p.dst, *out)}});
  }

  void Backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din) override {
    if (din == nullptr) return;
    Primitives& p = For(in.dim(0));
    din->Resize(in.shape());
    context_->Run(p.backward, {{DNNL_ARG_DST, Bind(p.dst, out)},
                               {DNNL_ARG_DIFF_DST, Bind(p.diff_dst, dout)},
                               {DNNL_ARG_DIFF_SRC, Bind(p.src, *din)}});
  }

 private:
  struct Primitives {
    dnnl::eltwise_forward forward;
    dnnl::eltwise_backward backward;
    memory src, dst, diff_dst;
  };

  Primitives& For(int64_t n) {
    auto it = primitives_.find(n);
    if (it != primitives_.end()) return it->second;
    const dnnl::engine& engine = context_->engine();
    memory::desc md = PlainDesc(WithBatch(n, shape_));
    // The _use_dst_for_bwd variant lets backward read the output, which the
    // model keeps anyway, instead of the input.
    dnnl::eltwise_forward::primitive_desc fwd_pd(
        dnnl::eltwise_forward::desc(prop_kind::forward_training,
                                    algorithm::eltwise_relu_use_dst_for_bwd, md, 0.f, 0.f),
        engine);
    dnnl::eltwise_backward::primitive_desc bwd_pd(
        dnnl::eltwise_backward::desc(algorithm::eltwise_relu_use_dst_for_bwd, md, md, 0.f, 0.f),
        engine, fwd_pd);
    Primitives p{dnnl::eltwise_forward(fwd_pd), dnnl::eltwise_backward(bwd_pd),
                 UnboundMemory(md, engine), UnboundMemory(md, engine), UnboundMemory(md, engine)};
    return primitives_.emplace(n, std::move(p)).first->second;
  }

  Shape shape_;
  OneDnnContext* context_;
  std::map<int64_t, Primitives> primitives_;
};

// Copies rather than aliasing, so every layer owns its output; the copy is
// small next to the layers around it.
class FlattenLayer final : public Layer {
 public:
  FlattenLayer(const Shape& input, const Shape& output) : input_(input), output_(output) {}

  const Shape& input_shape() const override { return input_; }
  const Shape& output_shape() const override { return output_; }

  void Forward(const Tensor& in, Tensor* out) override {
    out->Resize(WithBatch(in.dim(0), output_));
    std::memcpy(out->data(), in.data(), in.size() * sizeof(float));
  }

  void Backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din) override {
    if (din == nullptr) return;
    din->Resize(in.shape());
    std::memcpy(din->data(), dout.data(), dout.size() * sizeof(float));
  }

 private:
  Shape input_, output_;
};

}  // namespace

std::unique_ptr<Layer> NewReluLayer(const Shape& input, OneDnnContext* context) {
  return std::make_unique<ReluLayer>(input, context);
}

std::unique_ptr<Layer> NewFlattenLayer(const Shape& input, const Shape& output) {
  return std::make_unique<FlattenLayer>(input, output);
}

}  // namespace nightshift::internal
