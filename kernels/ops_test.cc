// Every op two ways: the plain reference against central finite differences
// in double precision, and the oneDNN layer against the reference, over
// several shapes including batch 1 and odd sizes.
#include <cmath>
#include <functional>

#include "gtest/gtest.h"
#include "kernels/layer.h"
#include "kernels/model.h"
#include "kernels/random.h"
#include "kernels/reference_ops.h"
#include "kernels/softmax_cross_entropy.h"

namespace nightshift {
namespace {

using reference::Array;

// Values representable in float, so float layers see exactly the reference's
// inputs.
Array RandomArray(const Shape& shape, Rng& rng) {
  Array a(shape);
  for (double& v : a.v) v = static_cast<float>(rng.Uniform(-1, 1));
  return a;
}

double Dot(const Array& a, const Array& b) {
  double s = 0;
  for (size_t i = 0; i < a.v.size(); ++i) s += a.v[i] * b.v[i];
  return s;
}

// Checks d(sum(f(x) * r))/dx against `analytic` by central differences.
void ExpectGradientMatches(Array x, const std::function<Array(const Array&)>& f, const Array& r,
                           const Array& analytic, const char* what) {
  const double eps = 1e-6;
  for (size_t i = 0; i < x.v.size(); ++i) {
    const double orig = x.v[i];
    x.v[i] = orig + eps;
    const double up = Dot(f(x), r);
    x.v[i] = orig - eps;
    const double down = Dot(f(x), r);
    x.v[i] = orig;
    const double numeric = (up - down) / (2 * eps);
    EXPECT_NEAR(analytic.v[i], numeric, 1e-6 * (1 + std::abs(numeric))) << what << " element " << i;
  }
}

void ExpectClose(const Tensor& actual, const Array& expected, double tol, const char* what) {
  ASSERT_EQ(actual.shape(), expected.shape) << what;
  for (int64_t i = 0; i < actual.size(); ++i) {
    ASSERT_NEAR(actual.data()[i], expected.v[i], tol * (1 + std::abs(expected.v[i])))
        << what << " element " << i;
  }
}

// ---------------------------------------------------------------- references
// against finite differences.

struct DenseCase {
  int64_t n, in, out;
  bool bias;
};

class DenseReferenceTest : public testing::TestWithParam<DenseCase> {};

TEST_P(DenseReferenceTest, BackwardMatchesFiniteDifferences) {
  const DenseCase c = GetParam();
  Rng rng({1, static_cast<uint64_t>(c.n * 1000 + c.in)});
  Array x = RandomArray({c.n, c.in}, rng), w = RandomArray({c.out, c.in}, rng);
  Array b = c.bias ? RandomArray({c.out}, rng) : Array();
  Array r = RandomArray({c.n, c.out}, rng);
  Array dx, dw, db;
  reference::DenseBackward(x, w, c.bias, r, &dx, &dw, &db);
  ExpectGradientMatches(
      x, [&](const Array& v) { return reference::DenseForward(v, w, b); }, r, dx, "dx");
  ExpectGradientMatches(
      w, [&](const Array& v) { return reference::DenseForward(x, v, b); }, r, dw, "dw");
  if (c.bias) {
    ExpectGradientMatches(
        b, [&](const Array& v) { return reference::DenseForward(x, w, v); }, r, db, "db");
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, DenseReferenceTest,
                         testing::Values(DenseCase{1, 3, 2, true}, DenseCase{5, 7, 3, true},
                                         DenseCase{4, 6, 5, false}));

TEST(ReluReferenceTest, BackwardMatchesFiniteDifferences) {
  Rng rng({2});
  Array x = RandomArray({3, 7}, rng), r = RandomArray({3, 7}, rng);
  ExpectGradientMatches(x, reference::ReluForward, r, reference::ReluBackward(x, r), "relu");
}

struct ConvCase {
  int64_t n, c, h, w, f, k;
  int stride, pad;
  bool bias;
};

class ConvReferenceTest : public testing::TestWithParam<ConvCase> {};

TEST_P(ConvReferenceTest, BackwardMatchesFiniteDifferences) {
  const ConvCase c = GetParam();
  reference::ConvParams p{c.stride, c.pad};
  Rng rng({3, static_cast<uint64_t>(c.h * 100 + c.k)});
  Array x = RandomArray({c.n, c.c, c.h, c.w}, rng);
  Array w = RandomArray({c.f, c.c, c.k, c.k}, rng);
  Array b = c.bias ? RandomArray({c.f}, rng) : Array();
  Array y = reference::Conv2dForward(x, w, b, p);
  Array r = RandomArray(y.shape, rng);
  Array dx, dw, db;
  reference::Conv2dBackward(x, w, c.bias, r, p, &dx, &dw, &db);
  ExpectGradientMatches(
      x, [&](const Array& v) { return reference::Conv2dForward(v, w, b, p); }, r, dx, "dx");
  ExpectGradientMatches(
      w, [&](const Array& v) { return reference::Conv2dForward(x, v, b, p); }, r, dw, "dw");
  if (c.bias) {
    ExpectGradientMatches(
        b, [&](const Array& v) { return reference::Conv2dForward(x, w, v, p); }, r, db, "db");
  }
}

const ConvCase kConvCases[] = {
    {1, 1, 5, 5, 2, 3, 1, 0, true},
    {2, 3, 7, 6, 3, 3, 2, 1, true},
    {3, 2, 5, 5, 1, 2, 1, 1, false},
};
INSTANTIATE_TEST_SUITE_P(Shapes, ConvReferenceTest, testing::ValuesIn(kConvCases));

TEST(MaxPoolReferenceTest, BackwardMatchesFiniteDifferences) {
  Rng rng({4});
  for (reference::PoolParams p : {reference::PoolParams{2, 2}, reference::PoolParams{3, 2}}) {
    Array x = RandomArray({2, 3, 7, 5}, rng);
    Array y = reference::MaxPoolForward(x, p);
    Array r = RandomArray(y.shape, rng);
    ExpectGradientMatches(
        x, [&](const Array& v) { return reference::MaxPoolForward(v, p); }, r,
        reference::MaxPoolBackward(x, r, p), "maxpool");
  }
}

TEST(SoftmaxCrossEntropyReferenceTest, GradientMatchesFiniteDifferences) {
  Rng rng({5});
  for (int64_t n : {1, 4}) {
    Array logits = RandomArray({n, 7}, rng);
    for (double& v : logits.v) v *= 4;
    std::vector<int> labels;
    for (int64_t i = 0; i < n; ++i) labels.push_back(rng.Below(7));
    Array dlogits, unused;
    reference::SoftmaxCrossEntropy(logits, labels, 0.5, &dlogits);
    const double eps = 1e-6;
    for (size_t i = 0; i < logits.v.size(); ++i) {
      Array up = logits, down = logits;
      up.v[i] += eps;
      down.v[i] -= eps;
      double numeric = 0.5 *
                       (reference::SoftmaxCrossEntropy(up, labels, 1, &unused) -
                        reference::SoftmaxCrossEntropy(down, labels, 1, &unused)) /
                       (2 * eps);
      EXPECT_NEAR(dlogits.v[i], numeric, 1e-7) << i;
    }
  }
}

// ---------------------------------------------------------------- oneDNN
// layers against the references.

// Runs `layer` forward and backward on random data and compares with
// the reference through `ref_forward` / `ref_backward`.
struct LayerRun {
  Tensor out, din;
  std::vector<Tensor> params, grads;
};

LayerRun RunLayer(Layer& layer, const Tensor& in, const Tensor& dout, std::vector<Tensor> params) {
  LayerRun run;
  run.params = std::move(params);
  std::vector<Tensor*> p, g;
  for (size_t i = 0; i < run.params.size(); ++i) {
    run.grads.emplace_back(run.params[i].shape());
    run.grads.back().Fill(12345.f);  // must be overwritten
  }
  for (size_t i = 0; i < run.params.size(); ++i) {
    p.push_back(&run.params[i]);
    g.push_back(&run.grads[i]);
  }
  layer.BindParams(p, g);
  layer.Forward(in, &run.out);
  layer.Backward(in, run.out, dout, &run.din);
  return run;
}

class DenseLayerTest : public testing::TestWithParam<DenseCase> {};

TEST_P(DenseLayerTest, MatchesReference) {
  const DenseCase c = GetParam();
  OneDnnContext context;
  v1::LayerSpec spec;
  spec.mutable_dense()->set_units(c.out);
  spec.mutable_dense()->set_no_bias(!c.bias);
  auto layer = MakeLayer(spec, {c.in}, &context);
  ASSERT_TRUE(layer.ok()) << layer.status();
  Rng rng({6, static_cast<uint64_t>(c.n)});
  Array x = RandomArray({c.n, c.in}, rng), w = RandomArray({c.out, c.in}, rng);
  Array b = c.bias ? RandomArray({c.out}, rng) : Array();
  Array dy = RandomArray({c.n, c.out}, rng);
  std::vector<Tensor> params;
  params.push_back(reference::ToTensor(w));
  if (c.bias) params.push_back(reference::ToTensor(b));
  // Run twice with the same batch size: the second call reuses primitives.
  for (int repeat = 0; repeat < 2; ++repeat) {
    std::vector<Tensor> copy;
    for (const Tensor& t : params) copy.push_back(t.Clone());
    LayerRun run =
        RunLayer(**layer, reference::ToTensor(x), reference::ToTensor(dy), std::move(copy));
    Array dx, dw, db;
    reference::DenseBackward(x, w, c.bias, dy, &dx, &dw, &db);
    ExpectClose(run.out, reference::DenseForward(x, w, b), 1e-5, "y");
    ExpectClose(run.din, dx, 1e-5, "dx");
    ExpectClose(run.grads[0], dw, 1e-5, "dw");
    if (c.bias) ExpectClose(run.grads[1], db, 1e-5, "db");
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, DenseLayerTest,
                         testing::Values(DenseCase{1, 3, 2, true}, DenseCase{5, 7, 3, true},
                                         DenseCase{4, 6, 5, false}, DenseCase{33, 784, 17, true}));

TEST(ReluLayerTest, MatchesReference) {
  OneDnnContext context;
  v1::LayerSpec spec;
  spec.mutable_relu();
  for (int64_t n : {1, 3}) {
    auto layer = MakeLayer(spec, {2, 3, 5}, &context);
    ASSERT_TRUE(layer.ok());
    Rng rng({7, static_cast<uint64_t>(n)});
    Array x = RandomArray({n, 2, 3, 5}, rng), dy = RandomArray(x.shape, rng);
    LayerRun run = RunLayer(**layer, reference::ToTensor(x), reference::ToTensor(dy), {});
    ExpectClose(run.out, reference::ReluForward(x), 0, "y");
    ExpectClose(run.din, reference::ReluBackward(x, dy), 0, "dx");
  }
}

class ConvLayerTest : public testing::TestWithParam<ConvCase> {};

TEST_P(ConvLayerTest, MatchesReference) {
  const ConvCase c = GetParam();
  OneDnnContext context;
  v1::LayerSpec spec;
  spec.mutable_conv2d()->set_filters(c.f);
  spec.mutable_conv2d()->set_kernel_size(c.k);
  spec.mutable_conv2d()->set_stride(c.stride);
  spec.mutable_conv2d()->set_padding(c.pad);
  spec.mutable_conv2d()->set_no_bias(!c.bias);
  auto layer = MakeLayer(spec, {c.c, c.h, c.w}, &context);
  ASSERT_TRUE(layer.ok()) << layer.status();
  reference::ConvParams p{c.stride, c.pad};
  Rng rng({8, static_cast<uint64_t>(c.h)});
  Array x = RandomArray({c.n, c.c, c.h, c.w}, rng);
  Array w = RandomArray({c.f, c.c, c.k, c.k}, rng);
  Array b = c.bias ? RandomArray({c.f}, rng) : Array();
  Array y = reference::Conv2dForward(x, w, b, p);
  Array dy = RandomArray(y.shape, rng);
  std::vector<Tensor> params;
  params.push_back(reference::ToTensor(w));
  if (c.bias) params.push_back(reference::ToTensor(b));
  LayerRun run =
      RunLayer(**layer, reference::ToTensor(x), reference::ToTensor(dy), std::move(params));
  Array dx, dw, db;
  reference::Conv2dBackward(x, w, c.bias, dy, p, &dx, &dw, &db);
  ExpectClose(run.out, y, 1e-5, "y");
  ExpectClose(run.din, dx, 1e-5, "dx");
  ExpectClose(run.grads[0], dw, 1e-5, "dw");
  if (c.bias) ExpectClose(run.grads[1], db, 1e-5, "db");
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvLayerTest, testing::ValuesIn(kConvCases));

TEST(MaxPoolLayerTest, MatchesReference) {
  OneDnnContext context;
  for (auto [k, s] : {std::pair<int, int>{2, 2}, {3, 2}, {2, 1}}) {
    v1::LayerSpec spec;
    spec.mutable_max_pool2d()->set_kernel_size(k);
    spec.mutable_max_pool2d()->set_stride(s);
    auto layer = MakeLayer(spec, {3, 7, 5}, &context);
    ASSERT_TRUE(layer.ok()) << layer.status();
    Rng rng({9, static_cast<uint64_t>(k * 10 + s)});
    Array x = RandomArray({2, 3, 7, 5}, rng);
    reference::PoolParams p{k, s};
    Array y = reference::MaxPoolForward(x, p);
    Array dy = RandomArray(y.shape, rng);
    LayerRun run = RunLayer(**layer, reference::ToTensor(x), reference::ToTensor(dy), {});
    ExpectClose(run.out, y, 0, "y");
    ExpectClose(run.din, reference::MaxPoolBackward(x, dy, p), 1e-6, "dx");
  }
}

TEST(FlattenLayerTest, ReshapesBothWays) {
  OneDnnContext context;
  v1::LayerSpec spec;
  spec.mutable_flatten();
  auto layer = MakeLayer(spec, {2, 3, 4}, &context);
  ASSERT_TRUE(layer.ok());
  EXPECT_EQ((*layer)->output_shape(), Shape({24}));
  Rng rng({10});
  Array x = RandomArray({3, 2, 3, 4}, rng), dy = RandomArray({3, 24}, rng);
  LayerRun run = RunLayer(**layer, reference::ToTensor(x), reference::ToTensor(dy), {});
  Array flat = x;
  flat.shape = {3, 24};
  Array dx = dy;
  dx.shape = x.shape;
  ExpectClose(run.out, flat, 0, "y");
  ExpectClose(run.din, dx, 0, "dx");
}

TEST(SoftmaxCrossEntropyTest, MatchesReference) {
  OneDnnContext context;
  SoftmaxCrossEntropy loss(&context);
  Rng rng({11});
  for (int64_t n : {1, 5, 64}) {
    Array logits = RandomArray({n, 10}, rng);
    for (double& v : logits.v) v *= 4;
    std::vector<int> labels;
    std::vector<int32_t> labels32;
    for (int64_t i = 0; i < n; ++i) {
      labels.push_back(rng.Below(10));
      labels32.push_back(labels.back());
    }
    Array expected_grad;
    const double expected = reference::SoftmaxCrossEntropy(logits, labels, 0.25, &expected_grad);
    Tensor grad;
    LossResult r = loss.Compute(reference::ToTensor(logits), labels32, 0.25f, &grad);
    EXPECT_NEAR(r.loss_sum, expected, 1e-5 * (1 + expected));
    ExpectClose(grad, expected_grad, 1e-5, "dlogits");
    int64_t correct = 0;
    for (int64_t i = 0; i < n; ++i) {
      int64_t best = 0;
      for (int j = 1; j < 10; ++j)
        if (logits.v[i * 10 + j] > logits.v[i * 10 + best]) best = j;
      correct += best == labels[i];
    }
    EXPECT_EQ(r.correct, correct);
  }
}

TEST(InferOutputShapeTest, RejectsWhatDoesNotFit) {
  v1::LayerSpec dense;
  dense.mutable_dense()->set_units(4);
  EXPECT_EQ(InferOutputShape(dense, {1, 28, 28}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_NE(InferOutputShape(dense, {1, 28, 28}).status().message().find("flatten"),
            absl::string_view::npos);
  v1::LayerSpec conv;
  conv.mutable_conv2d()->set_filters(2);
  conv.mutable_conv2d()->set_kernel_size(9);
  EXPECT_FALSE(InferOutputShape(conv, {1, 5, 5}).ok());
  conv.mutable_conv2d()->set_padding(2);
  ASSERT_TRUE(InferOutputShape(conv, {1, 5, 5}).ok());
  EXPECT_EQ(*InferOutputShape(conv, {1, 5, 5}), Shape({2, 1, 1}));
}

// The model's gradients equal the references chained by hand, and the first
// layer's input gradient is skipped without changing anything else.
TEST(ModelTest, GradientsMatchChainedReferences) {
  v1::ModelSpec spec;
  spec.add_layers()->mutable_flatten();
  spec.add_layers()->mutable_dense()->set_units(6);
  spec.add_layers()->mutable_relu();
  spec.add_layers()->mutable_dense()->set_units(3);
  auto model = Model::Create(spec, {1, 2, 4}, 42);
  ASSERT_TRUE(model.ok()) << model.status();
  auto& params = (*model)->parameters();
  ASSERT_EQ(params.size(), 4u);
  EXPECT_EQ(params[0].name, "layers.1.weight");
  EXPECT_EQ(params[3].name, "layers.3.bias");
  Rng rng({12});
  const int64_t n = 5;
  Array x = RandomArray({n, 1, 2, 4}, rng);
  std::vector<int> labels = {0, 2, 1, 1, 0};
  std::vector<int32_t> labels32(labels.begin(), labels.end());
  LossResult r = (*model)->ComputeGradients(reference::ToTensor(x), labels32, 1.f / n);

  Array xf = x;
  xf.shape = {n, 8};
  Array w1 = reference::FromTensor(params[0].value), b1 = reference::FromTensor(params[1].value);
  Array w2 = reference::FromTensor(params[2].value), b2 = reference::FromTensor(params[3].value);
  Array h = reference::DenseForward(xf, w1, b1);
  Array a = reference::ReluForward(h);
  Array logits = reference::DenseForward(a, w2, b2);
  Array dlogits;
  double loss = reference::SoftmaxCrossEntropy(logits, labels, 1.0 / n, &dlogits);
  Array da, dw2, db2, dx, dw1, db1;
  reference::DenseBackward(a, w2, true, dlogits, &da, &dw2, &db2);
  Array dh = reference::ReluBackward(h, da);
  reference::DenseBackward(xf, w1, true, dh, &dx, &dw1, &db1);
  EXPECT_NEAR(r.loss_sum, loss, 1e-5);
  ExpectClose(params[0].grad, dw1, 1e-5, "dw1");
  ExpectClose(params[1].grad, db1, 1e-5, "db1");
  ExpectClose(params[2].grad, dw2, 1e-5, "dw2");
  ExpectClose(params[3].grad, db2, 1e-5, "db2");
  // The flat gradient span is the concatenation of the named gradients.
  EXPECT_EQ((*model)->flat_gradients().data(), params[0].grad.data());
  EXPECT_EQ((*model)->flat_gradients().size(), 6u * 8 + 6 + 3 * 6 + 3);
}

// Work buffers are reused across steps and batch sizes without being
// cleared (Tensor::Resize keeps storage that is large enough), so a step
// must not depend on what an earlier one left there: the gradients of a
// batch are the same fresh, after a larger batch, and after a smaller one.
TEST(ModelTest, GradientsDoNotDependOnEarlierSteps) {
  v1::ModelSpec spec;
  auto* conv = spec.add_layers()->mutable_conv2d();
  conv->set_filters(3);
  conv->set_kernel_size(3);
  auto* pool = spec.add_layers()->mutable_max_pool2d();
  pool->set_kernel_size(2);
  spec.add_layers()->mutable_relu();
  spec.add_layers()->mutable_flatten();
  spec.add_layers()->mutable_dense()->set_units(7);
  spec.add_layers()->mutable_relu();
  spec.add_layers()->mutable_dense()->set_units(4);
  auto fresh = Model::Create(spec, {1, 8, 8}, 3), used = Model::Create(spec, {1, 8, 8}, 3);
  ASSERT_TRUE(fresh.ok() && used.ok()) << fresh.status();
  Rng rng({5});
  auto batch = [&](int64_t n) {
    Tensor x({n, 1, 8, 8});
    for (float& v : x.span()) v = static_cast<float>(rng.Uniform()) * 4 - 2;
    return x;
  };
  const Tensor x = batch(6), big = batch(11), small = batch(2);
  const std::vector<int32_t> labels = {0, 1, 2, 3, 1, 2};
  (*fresh)->ComputeGradients(x, labels, 1.f);
  const auto expected = (*fresh)->flat_gradients();
  const std::vector<float> want(expected.begin(), expected.end());
  for (const Tensor* before : {&big, &small}) {
    const std::vector<int32_t> other(before->dim(0), 3);
    (*used)->ComputeGradients(*before, other, 1.f);
    (*used)->ComputeGradients(x, labels, 1.f);
    const auto got = (*used)->flat_gradients();
    ASSERT_EQ(std::vector<float>(got.begin(), got.end()), want)
        << "after a batch of " << before->dim(0);
  }
}

TEST(ModelTest, SameSeedSameParametersOtherSeedOther) {
  v1::ModelSpec spec;
  spec.add_layers()->mutable_dense()->set_units(4);
  auto a = Model::Create(spec, {5}, 1), b = Model::Create(spec, {5}, 1),
       c = Model::Create(spec, {5}, 2);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  auto pa = (*a)->flat_parameters(), pb = (*b)->flat_parameters(), pc = (*c)->flat_parameters();
  EXPECT_TRUE(std::equal(pa.begin(), pa.end(), pb.begin()));
  EXPECT_FALSE(std::equal(pa.begin(), pa.end(), pc.begin()));
  const float bound = 1 / std::sqrt(5.f);
  for (float v : pa) EXPECT_LE(std::abs(v), bound);
}

TEST(ModelTest, NamesTheLayerThatDoesNotFit) {
  v1::ModelSpec spec;
  spec.add_layers()->mutable_conv2d()->set_filters(4);
  spec.mutable_layers(0)->mutable_conv2d()->set_kernel_size(3);
  spec.add_layers()->mutable_dense()->set_units(10);
  auto model = Model::Create(spec, {1, 28, 28}, 1);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("model.layers[1]"), absl::string_view::npos)
      << model.status();
}

}  // namespace
}  // namespace nightshift
