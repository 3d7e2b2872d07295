// Shared helpers of the linops CUDA kernels (included by every kernels/*.cu).
//
// Each kernel is a __host__ __device__ "body" that computes the work of one thread index, wrapped by an
// extern "C" __global__ function per precision (suffix _f32 / _f64). The bodies use only IEEE operations
// with explicit rounding (multiplications, additions, fma, floor; no contraction: compiled with
// --fmad=false), so a host build of the same bodies (tests/cuda_host) reproduces the device arithmetic
// bit for bit, atomic summation order aside.
#pragma once

#define LINOPS_HD __host__ __device__ __forceinline__

LINOPS_HD float floor_t(float x) { return floorf(x); }
LINOPS_HD double floor_t(double x) { return floor(x); }
LINOPS_HD float ceil_t(float x) { return ceilf(x); }
LINOPS_HD double ceil_t(double x) { return ceil(x); }
LINOPS_HD float fma_t(float a, float b, float c) { return fmaf(a, b, c); }
LINOPS_HD double fma_t(double a, double b, double c) { return fma(a, b, c); }
LINOPS_HD float min_t(float a, float b) { return fminf(a, b); }
LINOPS_HD double min_t(double a, double b) { return fmin(a, b); }
LINOPS_HD float max_t(float a, float b) { return fmaxf(a, b); }
LINOPS_HD double max_t(double a, double b) { return fmax(a, b); }
LINOPS_HD int min_i(int a, int b) { return a < b ? a : b; }
LINOPS_HD int max_i(int a, int b) { return a > b ? a : b; }

// *address += value: atomicAdd on the device (float64 needs sm_60 or newer), a plain add on the host.
template <typename T>
LINOPS_HD void add_to(T* address, T value) {
#ifdef __CUDA_ARCH__
    atomicAdd(address, value);
#else
    *address += value;
#endif
}

// The flat thread index of a 1-D launch.
#define LINOPS_THREAD_INDEX \
    (static_cast<int>(blockIdx.x) * static_cast<int>(blockDim.x) + static_cast<int>(threadIdx.x))
