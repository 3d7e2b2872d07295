// Host harness: runs the kernel bodies of linops/cuda/kernels/*.cu on the CPU, one "thread" index after
// another, so their numerics are tested without a GPU (tests/test_cuda_kernels.py builds this file with nvcc
// into a shared library and calls it through ctypes). The bodies are the ones the __global__ kernels call;
// add_to is a plain add on the host (a sequential stand-in for atomicAdd).
#include "radon.cu"
#include "blur.cu"
#include "diagonal.cu"

#define LINOPS_HOST_FUNCTIONS(T, SUFFIX)                                                                          \
    extern "C" void host_radon_forward_##SUFFIX(int total, const T* x, T* y, const T* subtract, int has_subtract, \
                                                const int* ray_int, const T* ray_real, int n_images, int height,  \
                                                int width, int n_views, int depth, int n_detector) {              \
        for (int idx = 0; idx < total; ++idx)                                                                     \
            radon_forward_body<T>(idx, x, y, subtract, has_subtract, ray_int, ray_real, n_images, height, width,  \
                                  n_views, depth, n_detector);                                                    \
    }                                                                                                             \
    extern "C" void host_radon_adjoint_scatter_##SUFFIX(int total, const T* y, T* x, const int* ray_int,          \
                                                        const T* ray_real, int n_images, int height, int width,   \
                                                        int n_views, int depth, int n_detector) {                 \
        for (int idx = 0; idx < total; ++idx)                                                                     \
            radon_adjoint_scatter_body<T>(idx, y, x, ray_int, ray_real, n_images, height, width, n_views, depth,  \
                                          n_detector);                                                            \
    }                                                                                                             \
    extern "C" void host_radon_adjoint_gather_##SUFFIX(int total, const T* y, T* x, const int* ray_int,           \
                                                       const T* ray_real, const T* view_real, T pixel_size,       \
                                                       int n_images, int height, int width, int n_views,          \
                                                       int depth, int n_detector) {                               \
        for (int idx = 0; idx < total; ++idx)                                                                     \
            radon_adjoint_gather_body<T>(idx, y, x, ray_int, ray_real, view_real, pixel_size, n_images, height,   \
                                         width, n_views, depth, n_detector);                                      \
    }                                                                                                             \
    extern "C" void host_conv_forward_##SUFFIX(int total, const T* x, T* y, const T* subtract, int has_subtract,  \
                                               const T* kernel, int n_kernels, int kh, int kw, const int* row_src, \
                                               const int* col_src, int height, int width) {                       \
        for (int idx = 0; idx < total; ++idx)                                                                     \
            conv_forward_body<T>(idx, x, y, subtract, has_subtract, kernel, n_kernels, kh, kw, row_src, col_src,  \
                                 height, width);                                                                  \
    }                                                                                                             \
    extern "C" void host_conv_adjoint_##SUFFIX(int total, const T* y, T* x, const T* kernel, int n_kernels,       \
                                               int kh, int kw, const int* row_ptr, const int* row_idx,            \
                                               const int* col_ptr, const int* col_idx, int height, int width) {   \
        for (int idx = 0; idx < total; ++idx)                                                                     \
            conv_adjoint_body<T>(idx, y, x, kernel, n_kernels, kh, kw, row_ptr, row_idx, col_ptr, col_idx,        \
                                 height, width);                                                                  \
    }                                                                                                             \
    extern "C" void host_pad_embed_##SUFFIX(int total, const T* x, T* out, const int* row_src, const int* col_src, \
                                            int height, int width, int out_h, int out_w) {                        \
        for (int idx = 0; idx < total; ++idx)                                                                     \
            pad_embed_body<T>(idx, x, out, row_src, col_src, height, width, out_h, out_w);                        \
    }                                                                                                             \
    extern "C" void host_fold_##SUFFIX(int total, const T* in, T* x, const int* row_ptr, const int* row_idx,      \
                                       const int* col_ptr, const int* col_idx, int in_h, int in_w, int height,    \
                                       int width) {                                                               \
        for (int idx = 0; idx < total; ++idx)                                                                     \
            fold_body<T>(idx, in, x, row_ptr, row_idx, col_ptr, col_idx, in_h, in_w, height, width);              \
    }                                                                                                             \
    extern "C" void host_diagonal_residual_##SUFFIX(int total, const T* w, int n_weights, const T* x, const T* y, \
                                                    T* r) {                                                       \
        for (int idx = 0; idx < total; ++idx) diagonal_residual_body<T>(idx, w, n_weights, x, y, r);             \
    }                                                                                                             \
    extern "C" void host_mask_residual_##SUFFIX(int total, const T* m, int n_weights, const T* x, const T* y,     \
                                                T* r) {                                                           \
        for (int idx = 0; idx < total; ++idx) mask_residual_body<T>(idx, m, n_weights, x, y, r);                 \
    }

LINOPS_HOST_FUNCTIONS(float, f32)
LINOPS_HOST_FUNCTIONS(double, f64)
