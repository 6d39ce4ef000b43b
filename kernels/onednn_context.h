// OneDnnContext: the oneDNN CPU engine and stream one model runs on, plus
// helpers to describe plain (row-major) float tensors to oneDNN.
//
// One context per model; it is not shared between threads. Primitives run
// on the calling thread's OpenMP pool, sized per process by
// SetComputeThreads (kernels/threads.h).
#ifndef NIGHTSHIFT_KERNELS_ONEDNN_CONTEXT_H_
#define NIGHTSHIFT_KERNELS_ONEDNN_CONTEXT_H_

#include <unordered_map>

#include "kernels/tensor.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace nightshift {

class OneDnnContext {
 public:
  OneDnnContext() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}
  OneDnnContext(const OneDnnContext&) = delete;
  OneDnnContext& operator=(const OneDnnContext&) = delete;

  const dnnl::engine& engine() const { return engine_; }
  dnnl::stream& stream() { return stream_; }

  // Runs `primitive` with `args` and waits for it.
  void Run(const dnnl::primitive& primitive, const std::unordered_map<int, dnnl::memory>& args) {
    primitive.execute(stream_, args);
    stream_.wait();
  }

 private:
  dnnl::engine engine_;
  dnnl::stream stream_;
};

// A plain row-major f32 descriptor: nc, nchw, oihw, x... chosen by rank.
inline dnnl::memory::desc PlainDesc(const Shape& shape) {
  dnnl::memory::dims dims(shape.begin(), shape.end());
  using tag = dnnl::memory::format_tag;
  tag t = tag::undef;
  switch (shape.size()) {
    case 1:
      t = tag::a;
      break;
    case 2:
      t = tag::ab;
      break;
    case 3:
      t = tag::abc;
      break;
    case 4:
      t = tag::abcd;
      break;
    default:
      t = tag::undef;
  }
  return dnnl::memory::desc(dims, dnnl::memory::data_type::f32, t);
}

// Memory for `desc` without its own buffer; point it at data with
// set_data_handle before each use.
inline dnnl::memory UnboundMemory(const dnnl::memory::desc& desc, const dnnl::engine& engine) {
  return dnnl::memory(desc, engine, DNNL_MEMORY_NONE);
}

// Points `m` at `t` (const only for the caller's view: oneDNN reads it).
inline dnnl::memory& Bind(dnnl::memory& m, const Tensor& t) {
  m.set_data_handle(const_cast<float*>(t.data()));
  return m;
}

}  // namespace nightshift

#endif  // NIGHTSHIFT_KERNELS_ONEDNN_CONTEXT_H_
