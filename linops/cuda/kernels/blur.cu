// Padded and circular 2-D convolution by direct summation, and the padding / folding passes of the FFT path.
//
// A padded blur (linops/operators/blur.py) is y = V(k) P x: P extends each H x W plane by the boundary rule
// to (H + kh - 1) x (W + kw - 1), V keeps the valid part of the convolution with the kh x kw kernel k:
//
//     y[i, j] = sum_{a, b} k[a, b] xp[i + kh - 1 - a, j + kw - 1 - b],    xp[m, n] = x[row_src[m], col_src[n]]
//
// with per-axis source tables (src = -1 reads a zero). A circular blur with a compact periodic kernel is the
// same with circular tables. The adjoint P^T V(k)^T correlates over the full support and folds the padding
// back onto the samples it was copied from, as a gather through the inverse tables (CSR: the padded positions
// row_idx[row_ptr[s] .. row_ptr[s + 1]) copy sample s):
//
//     x[s, t] = sum_{m in inv_row(s)} sum_{n in inv_col(t)} sum_{a, b} k[a, b] y[m - (kh - 1) + a, n - (kw - 1) + b]
//
// (y read as zero outside H x W). Both are one thread per output sample, deterministic, without atomics, and
// multiply exactly the same (k[a, b], sample) pairs, so the adjoint is the exact transpose of the forward.
// Planes are contiguous H x W images; plane p uses kernel p % n_kernels (per-channel kernels).
#include "common.cuh"

template <typename T>
LINOPS_HD void conv_forward_body(int idx, const T* x, T* y, const T* subtract, int has_subtract, const T* kernel,
                                 int n_kernels, int kh, int kw, const int* row_src, const int* col_src, int height,
                                 int width) {
    const int j = idx % width;
    const int i = (idx / width) % height;
    const int plane_index = idx / (width * height);
    const T* plane = x + static_cast<long long>(plane_index) * height * width;
    const T* k = kernel + (plane_index % n_kernels) * kh * kw;
    T acc = 0;
    for (int a = 0; a < kh; ++a) {
        const int r = row_src[i + kh - 1 - a];
        if (r < 0) continue;
        const T* row = plane + r * width;
        for (int b = 0; b < kw; ++b) {
            const int c = col_src[j + kw - 1 - b];
            if (c >= 0) acc = fma_t(k[a * kw + b], row[c], acc);
        }
    }
    y[idx] = has_subtract ? acc - subtract[idx] : acc;
}

template <typename T>
LINOPS_HD void conv_adjoint_body(int idx, const T* y, T* x, const T* kernel, int n_kernels, int kh, int kw,
                                 const int* row_ptr, const int* row_idx, const int* col_ptr, const int* col_idx,
                                 int height, int width) {
    const int t = idx % width;
    const int s = (idx / width) % height;
    const int plane_index = idx / (width * height);
    const T* plane = y + static_cast<long long>(plane_index) * height * width;
    const T* k = kernel + (plane_index % n_kernels) * kh * kw;
    T acc = 0;
    for (int e = row_ptr[s]; e < row_ptr[s + 1]; ++e) {
        const int m = row_idx[e];
        const int a_first = max_i(0, kh - 1 - m), a_last = min_i(kh - 1, height - 1 + kh - 1 - m);
        for (int f = col_ptr[t]; f < col_ptr[t + 1]; ++f) {
            const int n = col_idx[f];
            const int b_first = max_i(0, kw - 1 - n), b_last = min_i(kw - 1, width - 1 + kw - 1 - n);
            for (int a = a_first; a <= a_last; ++a) {
                const int row = (m - (kh - 1) + a) * width + n - (kw - 1);
                for (int b = b_first; b <= b_last; ++b) acc = fma_t(k[a * kw + b], plane[row + b], acc);
            }
        }
    }
    x[idx] = acc;
}

// out[p, m, n] = x[p, row_src[m], col_src[n]] (0 where a source is -1): boundary extension and zero embedding
// of each plane into the out_h x out_w FFT buffer, in one pass.
template <typename T>
LINOPS_HD void pad_embed_body(int idx, const T* x, T* out, const int* row_src, const int* col_src, int height,
                              int width, int out_h, int out_w) {
    const int n = idx % out_w;
    const int m = (idx / out_w) % out_h;
    const int plane_index = idx / (out_w * out_h);
    const int r = row_src[m], c = col_src[n];
    out[idx] = (r >= 0 && c >= 0) ? x[(static_cast<long long>(plane_index) * height + r) * width + c] : T(0);
}

// x[p, s, t] = sum_{m in inv_row(s), n in inv_col(t)} in[p, m, n]: the transpose of pad_embed (and, with
// one-entry tables, a crop).
template <typename T>
LINOPS_HD void fold_body(int idx, const T* in, T* x, const int* row_ptr, const int* row_idx, const int* col_ptr,
                         const int* col_idx, int in_h, int in_w, int height, int width) {
    const int t = idx % width;
    const int s = (idx / width) % height;
    const int plane_index = idx / (width * height);
    const T* plane = in + static_cast<long long>(plane_index) * in_h * in_w;
    T acc = 0;
    for (int e = row_ptr[s]; e < row_ptr[s + 1]; ++e)
        for (int f = col_ptr[t]; f < col_ptr[t + 1]; ++f) acc += plane[row_idx[e] * in_w + col_idx[f]];
    x[idx] = acc;
}

#define LINOPS_BLUR_KERNELS(T, SUFFIX)                                                                         \
    extern "C" __global__ void conv_forward_##SUFFIX(int total, const T* x, T* y, const T* subtract,           \
                                                     int has_subtract, const T* kernel, int n_kernels, int kh,  \
                                                     int kw, const int* row_src, const int* col_src,           \
                                                     int height, int width) {                                  \
        const int idx = LINOPS_THREAD_INDEX;                                                                   \
        if (idx < total)                                                                                       \
            conv_forward_body<T>(idx, x, y, subtract, has_subtract, kernel, n_kernels, kh, kw, row_src,        \
                                 col_src, height, width);                                                      \
    }                                                                                                          \
    extern "C" __global__ void conv_adjoint_##SUFFIX(int total, const T* y, T* x, const T* kernel,             \
                                                     int n_kernels, int kh, int kw, const int* row_ptr,         \
                                                     const int* row_idx, const int* col_ptr,                   \
                                                     const int* col_idx, int height, int width) {              \
        const int idx = LINOPS_THREAD_INDEX;                                                                   \
        if (idx < total)                                                                                       \
            conv_adjoint_body<T>(idx, y, x, kernel, n_kernels, kh, kw, row_ptr, row_idx, col_ptr, col_idx,     \
                                 height, width);                                                               \
    }                                                                                                          \
    extern "C" __global__ void pad_embed_##SUFFIX(int total, const T* x, T* out, const int* row_src,           \
                                                  const int* col_src, int height, int width, int out_h,        \
                                                  int out_w) {                                                 \
        const int idx = LINOPS_THREAD_INDEX;                                                                   \
        if (idx < total) pad_embed_body<T>(idx, x, out, row_src, col_src, height, width, out_h, out_w);        \
    }                                                                                                          \
    extern "C" __global__ void fold_##SUFFIX(int total, const T* in, T* x, const int* row_ptr,                 \
                                             const int* row_idx, const int* col_ptr, const int* col_idx,       \
                                             int in_h, int in_w, int height, int width) {                      \
        const int idx = LINOPS_THREAD_INDEX;                                                                   \
        if (idx < total)                                                                                       \
            fold_body<T>(idx, in, x, row_ptr, row_idx, col_ptr, col_idx, in_h, in_w, height, width);           \
    }

LINOPS_BLUR_KERNELS(float, f32)
LINOPS_BLUR_KERNELS(double, f64)
