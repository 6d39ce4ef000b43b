#include "kernels/reference_ops.h"

#include <cmath>
#include <limits>

#include "glog/logging.h"

namespace nightshift::reference {

Array DenseForward(const Array& x, const Array& w, const Array& b) {
  const int64_t n = x.shape[0], in = x.shape[1], out = w.shape[0];
  CHECK_EQ(w.shape[1], in);
  Array y({n, out});
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t o = 0; o < out; ++o) {
      double s = b.v.empty() ? 0.0 : b.v[o];
      for (int64_t k = 0; k < in; ++k) s += x.v[i * in + k] * w.v[o * in + k];
      y.v[i * out + o] = s;
    }
  }
  return y;
}

void DenseBackward(const Array& x, const Array& w, bool has_bias, const Array& dy, Array* dx,
                   Array* dw, Array* db) {
  const int64_t n = x.shape[0], in = x.shape[1], out = w.shape[0];
  *dx = Array(x.shape);
  *dw = Array(w.shape);
  *db = has_bias ? Array({out}) : Array();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t o = 0; o < out; ++o) {
      double g = dy.v[i * out + o];
      if (has_bias) db->v[o] += g;
      for (int64_t k = 0; k < in; ++k) {
        dx->v[i * in + k] += g * w.v[o * in + k];
        dw->v[o * in + k] += g * x.v[i * in + k];
      }
    }
  }
}

Array ReluForward(const Array& x) {
  Array y(x.shape);
  for (size_t i = 0; i < x.v.size(); ++i) y.v[i] = x.v[i] > 0 ? x.v[i] : 0.0;
  return y;
}

Array ReluBackward(const Array& x, const Array& dy) {
  Array dx(x.shape);
  for (size_t i = 0; i < x.v.size(); ++i) dx.v[i] = x.v[i] > 0 ? dy.v[i] : 0.0;
  return dx;
}

namespace {

int64_t OutSize(int64_t in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }

}  // namespace

Array Conv2dForward(const Array& x, const Array& w, const Array& b, const ConvParams& p) {
  const int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], wd = x.shape[3];
  const int64_t f = w.shape[0], k = w.shape[2];
  CHECK_EQ(w.shape[1], c);
  const int64_t oh = OutSize(h, k, p.stride, p.padding);
  const int64_t ow = OutSize(wd, k, p.stride, p.padding);
  Array y({n, f, oh, ow});
  for (int64_t in = 0; in < n; ++in)
    for (int64_t of = 0; of < f; ++of)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          double s = b.v.empty() ? 0.0 : b.v[of];
          for (int64_t ic = 0; ic < c; ++ic)
            for (int64_t ky = 0; ky < k; ++ky)
              for (int64_t kx = 0; kx < k; ++kx) {
                int64_t iy = oy * p.stride - p.padding + ky;
                int64_t ix = ox * p.stride - p.padding + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                s += x.v[((in * c + ic) * h + iy) * wd + ix] *
                     w.v[((of * c + ic) * k + ky) * k + kx];
              }
          y.v[((in * f + of) * oh + oy) * ow + ox] = s;
        }
  return y;
}

void Conv2dBackward(const Array& x, const Array& w, bool has_bias, const Array& dy,
                    const ConvParams& p, Array* dx, Array* dw, Array* db) {
  const int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], wd = x.shape[3];
  const int64_t f = w.shape[0], k = w.shape[2];
  const int64_t oh = dy.shape[2], ow = dy.shape[3];
  *dx = Array(x.shape);
  *dw = Array(w.shape);
  *db = has_bias ? Array({f}) : Array();
  for (int64_t in = 0; in < n; ++in)
    for (int64_t of = 0; of < f; ++of)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          double g = dy.v[((in * f + of) * oh + oy) * ow + ox];
          if (has_bias) db->v[of] += g;
          for (int64_t ic = 0; ic < c; ++ic)
            for (int64_t ky = 0; ky < k; ++ky)
              for (int64_t kx = 0; kx < k; ++kx) {
                int64_t iy = oy * p.stride - p.padding + ky;
                int64_t ix = ox * p.stride - p.padding + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                int64_t xi = ((in * c + ic) * h + iy) * wd + ix;
                int64_t wi = ((of * c + ic) * k + ky) * k + kx;
                dx->v[xi] += g * w.v[wi];
                dw->v[wi] += g * x.v[xi];
              }
        }
}

namespace {

// Index into x of the first maximum of window (in, ic, oy, ox).
int64_t ArgMaxOfWindow(const Array& x, const PoolParams& p, int64_t in, int64_t ic, int64_t oy,
                       int64_t ox) {
  const int64_t c = x.shape[1], h = x.shape[2], wd = x.shape[3];
  int64_t best = -1;
  double best_v = -std::numeric_limits<double>::infinity();
  for (int ky = 0; ky < p.kernel; ++ky)
    for (int kx = 0; kx < p.kernel; ++kx) {
      int64_t iy = oy * p.stride + ky, ix = ox * p.stride + kx;
      int64_t i = ((in * c + ic) * h + iy) * wd + ix;
      if (best < 0 || x.v[i] > best_v) {
        best = i;
        best_v = x.v[i];
      }
    }
  return best;
}

}  // namespace

Array MaxPoolForward(const Array& x, const PoolParams& p) {
  const int64_t n = x.shape[0], c = x.shape[1];
  const int64_t oh = OutSize(x.shape[2], p.kernel, p.stride, 0);
  const int64_t ow = OutSize(x.shape[3], p.kernel, p.stride, 0);
  Array y({n, c, oh, ow});
  for (int64_t in = 0; in < n; ++in)
    for (int64_t ic = 0; ic < c; ++ic)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox)
          y.v[((in * c + ic) * oh + oy) * ow + ox] = x.v[ArgMaxOfWindow(x, p, in, ic, oy, ox)];
  return y;
}

Array MaxPoolBackward(const Array& x, const Array& dy, const PoolParams& p) {
  const int64_t n = x.shape[0], c = x.shape[1];
  const int64_t oh = dy.shape[2], ow = dy.shape[3];
  Array dx(x.shape);
  for (int64_t in = 0; in < n; ++in)
    for (int64_t ic = 0; ic < c; ++ic)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox)
          dx.v[ArgMaxOfWindow(x, p, in, ic, oy, ox)] += dy.v[((in * c + ic) * oh + oy) * ow + ox];
  return dx;
}

double SoftmaxCrossEntropy(const Array& logits, const std::vector<int>& labels, double scale,
                           Array* dlogits) {
  const int64_t n = logits.shape[0], k = logits.shape[1];
  *dlogits = Array(logits.shape);
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double* row = &logits.v[i * k];
    double m = row[0];
    for (int64_t j = 1; j < k; ++j) m = std::max(m, row[j]);
    double z = 0;
    for (int64_t j = 0; j < k; ++j) z += std::exp(row[j] - m);
    double log_z = m + std::log(z);
    total += log_z - row[labels[i]];
    for (int64_t j = 0; j < k; ++j) {
      double prob = std::exp(row[j] - log_z);
      dlogits->v[i * k + j] = scale * (prob - (j == labels[i] ? 1.0 : 0.0));
    }
  }
  return total;
}

Array FromTensor(const Tensor& t) {
  Array a(t.shape());
  for (int64_t i = 0; i < t.size(); ++i) a.v[i] = t.data()[i];
  return a;
}

Tensor ToTensor(const Array& a) {
  Tensor t(a.shape);
  for (int64_t i = 0; i < t.size(); ++i) t.data()[i] = static_cast<float>(a.v[i]);
  return t;
}

}  // namespace nightshift::reference
