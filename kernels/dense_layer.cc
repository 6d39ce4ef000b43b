// Dense (fully connected) layer on oneDNN inner-product primitives, with
// PyTorch's weight layout [out, in] kept plain so checkpoints and the
// all-reduce see it as is.
#include <map>

#include "kernels/layer_impls.h"

namespace nightshift::internal {
namespace {

using dnnl::memory;
using dnnl::prop_kind;

class DenseLayer final : public Layer {
 public:
  DenseLayer(const v1::DenseLayer& spec, const Shape& input, const Shape& output,
             OneDnnContext* context)
      : input_(input), output_(output), has_bias_(!spec.no_bias()), context_(context) {}

  const Shape& input_shape() const override { return input_; }
  const Shape& output_shape() const override { return output_; }

  std::vector<ParamSpec> Params() const override {
    std::vector<ParamSpec> p = {{"weight", {output_[0], input_[0]}, input_[0]}};
    if (has_bias_) p.push_back({"bias", {output_[0]}, input_[0]});
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
    dnnl::inner_product_forward forward;
    dnnl::inner_product_backward_data backward_data;
    dnnl::inner_product_backward_weights backward_weights;
    memory src, dst, weights, bias, src_grad, weights_grad, bias_grad;
  };

  Primitives& For(int64_t n) {
    auto it = primitives_.find(n);
    if (it != primitives_.end()) return it->second;
    const dnnl::engine& engine = context_->engine();
    memory::desc src = PlainDesc({n, input_[0]});
    memory::desc dst = PlainDesc({n, output_[0]});
    memory::desc w = PlainDesc({output_[0], input_[0]});
    memory::desc b = PlainDesc({output_[0]});
    auto fwd_desc =
        has_bias_ ? dnnl::inner_product_forward::desc(prop_kind::forward_training, src, w, b, dst)
                  : dnnl::inner_product_forward::desc(prop_kind::forward_training, src, w, dst);
    dnnl::inner_product_forward::primitive_desc fwd_pd(fwd_desc, engine);
    dnnl::inner_product_backward_data::primitive_desc bwd_data_pd(
        dnnl::inner_product_backward_data::desc(src, w, dst), engine, fwd_pd);
    auto bwd_w_desc = has_bias_ ? dnnl::inner_product_backward_weights::desc(src, w, b, dst)
                                : dnnl::inner_product_backward_weights::desc(src, w, dst);
    dnnl::inner_product_backward_weights::primitive_desc bwd_w_pd(bwd_w_desc, engine, fwd_pd);
    Primitives p{dnnl::inner_product_forward(fwd_pd),
                 dnnl::inner_product_backward_data(bwd_data_pd),
                 dnnl::inner_product_backward_weights(bwd_w_pd),
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
  bool has_bias_;
  OneDnnContext* context_;
  Tensor *weight_ = nullptr, *bias_ = nullptr;
  Tensor *dweight_ = nullptr, *dbias_ = nullptr;
  std::map<int64_t, Primitives> primitives_;
};

}  // namespace

std::unique_ptr<Layer> NewDenseLayer(const v1::DenseLayer& spec, const Shape& input,
                                     const Shape& output, OneDnnContext* context) {
  return std::make_unique<DenseLayer>(spec, input, output, context);
}

}  // namespace nightshift::internal
