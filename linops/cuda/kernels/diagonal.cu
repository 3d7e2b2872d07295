// Pointwise scaling fused with the data residual: the gradient of 1/2 ||D x - y||^2 in one pass.
//
//     diagonal:  r = w (w x - y)        (D = diag(w), real w: D^T = D)
//     mask:      r = m (x - y)          (m in {0, 1}: m (m x - y) = m x - m y = m (x - y) exactly)
//
// x, y and r hold `total` samples, a whole batch; the weights hold one sample (n_weights values, broadcast to
// the operator's in_shape beforehand) and repeat along the batch: weight of idx = w[idx % n_weights].
// Products and differences are rounded separately (no contraction), as torch computes them.
#include "common.cuh"

template <typename T>
LINOPS_HD void diagonal_residual_body(int idx, const T* w, int n_weights, const T* x, const T* y, T* r) {
    const T weight = w[idx % n_weights];
    r[idx] = weight * (weight * x[idx] - y[idx]);
}

template <typename T>
LINOPS_HD void mask_residual_body(int idx, const T* m, int n_weights, const T* x, const T* y, T* r) {
    r[idx] = m[idx % n_weights] * (x[idx] - y[idx]);
}

#define LINOPS_DIAGONAL_KERNELS(T, SUFFIX)                                                                 \
    extern "C" __global__ void diagonal_residual_##SUFFIX(int total, const T* w, int n_weights, const T* x, \
                                                          const T* y, T* r) {                              \
        const int idx = LINOPS_THREAD_INDEX;                                                               \
        if (idx < total) diagonal_residual_body<T>(idx, w, n_weights, x, y, r);                            \
    }                                                                                                      \
    extern "C" __global__ void mask_residual_##SUFFIX(int total, const T* m, int n_weights, const T* x,    \
                                                      const T* y, T* r) {                                  \
        const int idx = LINOPS_THREAD_INDEX;                                                               \
        if (idx < total) mask_residual_body<T>(idx, m, n_weights, x, y, r);                                \
    }

LINOPS_DIAGONAL_KERNELS(float, f32)
LINOPS_DIAGONAL_KERNELS(double, f64)
