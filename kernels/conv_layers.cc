// Conv2d and MaxPool2d layers on oneDNN convolution and pooling primitives,
// NCHW activations and [filters, channels, k, k] weights, all plain.
#include <map>

#include "kernels/layer_impls.h"

namespace nightshift::internal {
namespace {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;

class Conv2dLayer final : public Layer {
 public:
  Conv2dLayer(const v1::Conv2dLayer& spec, const Shape& input, const Shape& output,
              OneDnnContext* context)
      : input_(input),
        output_(output),
        kernel_(spec.kernel_size()),
        stride_(spec.stride() == 0 ? 1 : spec.stride()),
        padding_(spec.padding()),
        has_bias_(!spec.no_bias()),
        context_(context) {}

  const Shape& input_shape() const override { return input_; }
  const Shape& output_shape() const override { return output_; }

  std::vector<ParamSpec> Params() const override {
    const int64_t fan_in = input_[0] * kernel_ * kernel_;
    std::vector<ParamSpec> p = {{"weight", {output_[0], input_[0], kernel_, kernel_}, fan_in}};
    if (has_bias_) p.push_back({"bias", {output_[0]}, fan_in});
    return p;
  }

  void BindParams(std::vector<Tensor*> params, std::vector<Tensor*> grads) override {
    weight_ = params[0];
    dweight_ = grads[0];
    if (has_bias_) {
      bias_ = params[1];
      dbias_ = grads[1];
    }
  }

  void Forward(const Tensor& in, Tensor* out) override {
    Primitives& p = For(in.dim(0));
    out->Resize(WithBatch(in.dim(0), output_));
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, Bind(p.src, in)},
                                            {DNNL_ARG_WEIGHTS, Bind(p.weights, *weight_)},
                                            {DNNL_ARG_DST, Bind(p.dst, *out)}};
    if (has_bias_) args[DNNL_ARG_BIAS] = Bind(p.bias, *bias_);
    context_->Run(p.forward, args);
  }

  void Backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din) override {
    Primitives& p = For(in.dim(0));
    std::unordered_map<int, memory> wargs = {
        {DNNL_ARG_SRC, Bind(p.src, in)},
        {DNNL_ARG_DIFF_DST, Bind(p.dst, dout)},
        {DNNL_ARG_DIFF_WEIGHTS, Bind(p.weights_grad, *dweight_)}};
    if (has_bias_) wargs[DNNL_ARG_DIFF_BIAS] = Bind(p.bias_grad, *dbias_);
    context_->Run(p.backward_weights, wargs);
    if (din == nullptr) return;
    din->Resize(in.shape());
    context_->Run(p.backward_data, {{DNNL_ARG_DIFF_DST, Bind(p.dst, dout)},
                                    {DNNL_ARG_WEIGHTS, Bind(p.weights, *weight_)},
                                    {DNNL_ARG_DIFF_SRC, Bind(p.src_grad, *din)}});
  }

 private:
  struct Primitives {
    dnnl::convolution_forward forward;
    dnnl::convolution_backward_data backward_data;
    dnnl::convolution_backward_weights backward_weights;
    memory src, dst, weights, bias, src_grad, weights_grad, bias_grad;
  };

  Primitives& For(int64_t n) {
    auto it = primitives_.find(n);
    if (it != primitives_.end()) return it->second;
    const dnnl::engine& engine = context_->engine();
    memory::desc src = PlainDesc(WithBatch(n, input_));
    memory::desc dst = PlainDesc(WithBatch(n, output_));
    memory::desc w = PlainDesc({output_[0], input_[0], kernel_, kernel_});
    memory::desc b = PlainDesc({output_[0]});
    memory::dims strides = {stride_, stride_};
    memory::dims pad = {padding_, padding_};
    auto fwd_desc = has_bias_ ? dnnl::convolution_forward::desc(prop_kind::forward_training,
                                                                algorithm::convolution_direct, src,
                                                                w, b, dst, strides, pad, pad)
                              : dnnl::convolution_forward::desc(prop_kind::forward_training,
                                                                algorithm::convolution_direct, src,
                                                                w, dst, strides, pad, pad);
    dnnl::convolution_forward::primitive_desc fwd_pd(fwd_desc, engine);
    dnnl::convolution_backward_data::primitive_desc bwd_data_pd(
        dnnl::convolution_backward_data::desc(algorithm::convolution_direct, src, w, dst, strides,
                                              pad, pad),
        engine, fwd_pd);
    auto bwd_w_desc = has_bias_
                          ? dnnl::convolution_backward_weights::desc(
                                algorithm::convolution_direct, src, w, b, dst, strides, pad, pad)
                          : dnnl::convolution_backward_weights::desc(
                                algorithm::convolution_direct, src, w, dst, strides, pad, pad);
    dnnl::convolution_backward_weights::primitive_desc bwd_w_pd(bwd_w_desc, engine, fwd_pd);
    Primitives p{dnnl::convolution_forward(fwd_pd),
                 dnnl::convolution_backward_data(bwd_data_pd),
                 dnnl::convolution_backward_weights(bwd_w_pd),
                 UnboundMemory(src, engine),
                 UnboundMemory(dst, engine),
                 UnboundMemory(w, engine),
                 UnboundMemory(b, engine),
                 UnboundMemory(src, engine),
                 UnboundMemory(w, engine),
                 UnboundMemory(b, engine)};
    return primitives_.emplace(n, std::move(p)).first->second;
  }

  Shape input_, output_;
  int64_t kernel_, stride_, padding_;
  bool has_bias_;
  OneDnnContext* context_;
  Tensor *weight_ = nullptr, *bias_ = nullptr;
  Tensor *dweight_ = nullptr, *dbias_ = nullptr;
  std::map<int64_t, Primitives> primitives_;
};

// Keeps the workspace of the last forward per batch size: Backward must
// follow the Forward of the same batch, as in every training step.
class MaxPool2dLayer final : public Layer {
 public:
  MaxPool2dLayer(const v1::MaxPool2dLayer& spec, const Shape& input, const Shape& output,
                 OneDnnContext* context)
      : input_(input),
        output_(output),
        kernel_(spec.kernel_size()),
        stride_(spec.stride() == 0 ? spec.kernel_size() : spec.stride()),
        context_(context) {}

  const Shape& input_shape() const override { return input_; }
  const Shape& output_shape() const override { return output_; }

  void Forward(const Tensor& in, Tensor* out) override {
    Primitives& p = For(in.dim(0));
    out->Resize(WithBatch(in.dim(0), output_));
    context_->Run(p.forward, {{DNNL_ARG_SRC, Bind(p.src, in)},
                              {DNNL_ARG_DST, Bind(p.dst, *out)},
                              {DNNL_ARG_WORKSPACE, p.workspace}});
  }

  void Backward(const Tensor& in, const Tensor& out, const Tensor& dout, Tensor* din) override {
    if (din == nullptr) return;
    Primitives& p = For(in.dim(0));
    din->Resize(in.shape());
    context_->Run(p.backward, {{DNNL_ARG_DIFF_DST, Bind(p.dst, dout)},
                               {DNNL_ARG_DIFF_SRC, Bind(p.src, *din)},
                               {DNNL_ARG_WORKSPACE, p.workspace}});
  }

 private:
  struct Primitives {
    dnnl::pooling_forward forward;
    dnnl::pooling_backward backward;
    memory src, dst, workspace;
  };

  Primitives& For(int64_t n) {
    auto it = primitives_.find(n);
    if (it != primitives_.end()) return it->second;
    const dnnl::engine& engine = context_->engine();
    memory::desc src = PlainDesc(WithBatch(n, input_));
    memory::desc dst = PlainDesc(WithBatch(n, output_));
    memory::dims strides = {stride_, stride_};
    memory::dims kernel = {kernel_, kernel_};
    memory::dims pad = {0, 0};
    dnnl::pooling_forward::primitive_desc fwd_pd(
        dnnl::pooling_forward::desc(prop_kind::forward_training, algorithm::pooling_max, src, dst,
                                    strides, kernel, pad, pad),
        engine);
    dnnl::pooling_backward::primitive_desc bwd_pd(
        dnnl::pooling_backward::desc(algorithm::pooling_max, src, dst, strides, kernel, pad, pad),
        engine, fwd_pd);
    Primitives p{dnnl::pooling_forward(fwd_pd), dnnl::pooling_backward(bwd_pd),
                 UnboundMemory(src, engine), UnboundMemory(dst, engine),
                 memory(fwd_pd.workspace_desc(), engine)};
    return primitives_.emplace(n, std::move(p)).first->second;
  }

  Shape input_, output_;
  int64_t kernel_, stride_;
  OneDnnContext* context_;
  std::map<int64_t, Primitives> primitives_;
};

}  // namespace

std::unique_ptr<Layer> NewConv2dLayer(const v1::Conv2dLayer& spec, const Shape& input,
                                      const Shape& output, OneDnnContext* context) {
  return std::make_unique<Conv2dLayer>(spec, input, output, context);
}

std::unique_ptr<Layer> NewMaxPool2dLayer(const v1::MaxPool2dLayer& spec, const Shape& input,
                                         const Shape& output, OneDnnContext* context) {
  return std::make_unique<MaxPool2dLayer>(spec, input, output, context);
}

}  // namespace nightshift::internal
