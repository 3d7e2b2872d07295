// Matrix-free Joseph projection (parallel and fan beam) and its exact transpose.
//
// The matrix A is the one documented in linops/operators/tomography/joseph.py. Ray j (view-major,
// j = view * n_detector + k) is sampled once per step i (an image row for a steep ray, |d_y| >= |d_x|; a
// column for a flat one) at the fractional position across the image
//
//     position(i) = offset + rate * i     (column u of row i, or row v of column i),
//
// lower = floor(position), f = position - lower, w = pixel length per step, and row j of A holds
//
//     A[j, pixel(i, lower)]     = w - f w      if 0 <= lower     < n_across
//     A[j, pixel(i, lower + 1)] = f w          if 0 <= lower + 1 < n_across
//
// with pixel(i, a) = i W + a (steep) or a W + i (flat). The ray table (built in float64 by
// linops/cuda/radon.py) stores per ray
//
//     ray_int[4 j + 0..3]  = base, first, last, steep     base = floor(offset); steps first <= i < last
//     ray_real[4 j + 0..3] = frac, rate_hi, rate_lo, w    frac = offset - base; rate = rate_hi + rate_lo
//
// and `joseph_sample` evaluates position(i) = base + frac + rate_hi i + rate_lo i with the rounding error of
// rate_hi * i recovered by an fma, so lower and f are accurate to a few ulps of 1 (not of the image width)
// even in float32. Every kernel below computes a weight only through `joseph_sample` and `joseph_weights`,
// on the same table: the forward, the scattering adjoint and the gathering adjoint use bit-identical
// weights for every (ray, pixel) pair, so the adjoints are the exact transpose of the forward.
//
// Layouts (contiguous): images x[image][slice][row][col] with image = sample * C + channel, sinograms
// y[image][view][slice][bin]; depth (slices) is 1 for 2-D images. A thread serves LINOPS_RADON_IMAGE_TILE images
// at once (the same ray or pixel in each; the last tile may be partial), so the geometry of a sample is computed
// once per tile instead of once per image.
#include "common.cuh"

#define LINOPS_RADON_IMAGE_TILE 4

template <typename T>
struct JosephSample {
    int lower;  // the lower of the two pixels straddling the sample, across the image
    T f;        // the fractional distance from it, in [0, 1)
};

template <typename T>
LINOPS_HD JosephSample<T> joseph_sample(int base, T frac, T rate_hi, T rate_lo, int i) {
    const T step = static_cast<T>(i);
    const T p = rate_hi * step;
    const T e = fma_t(rate_hi, step, -p);  // p + e == rate_hi * i exactly
    const T n = floor_t(p);
    const T t = (p - n) + (frac + fma_t(rate_lo, step, e));  // p - n is exact
    const T m = floor_t(t);
    JosephSample<T> s;
    s.lower = base + static_cast<int>(n) + static_cast<int>(m);
    s.f = t - m;
    return s;
}

// The two weights of a sample: w0 = w - f w for pixel `lower`, w1 = f w for pixel `lower + 1`.
template <typename T>
LINOPS_HD void joseph_weights(T f, T w, T& w0, T& w1) {
    w1 = f * w;
    w0 = w - w1;
}

// One row of the ray table.
template <typename T>
struct JosephRay {
    int base, first, last;
    bool steep;
    T frac, rate_hi, rate_lo, w;

    LINOPS_HD JosephSample<T> sample(int i) const { return joseph_sample(base, frac, rate_hi, rate_lo, i); }
};

template <typename T>
LINOPS_HD JosephRay<T> load_ray(const int* ray_int, const T* ray_real, int ray) {
    JosephRay<T> j;
    j.base = ray_int[4 * ray];
    j.first = ray_int[4 * ray + 1];
    j.last = ray_int[4 * ray + 2];
    j.steep = ray_int[4 * ray + 3] != 0;
    j.frac = ray_real[4 * ray];
    j.rate_hi = ray_real[4 * ray + 1];
    j.rate_lo = ray_real[4 * ray + 2];
    j.w = ray_real[4 * ray + 3];
    return j;
}

// The (image tile, view, slice, bin) of a ray-driven thread, and its sinogram offset in the tile's first image.
struct RayThread {
    int k, d, v, first_image, images;
    long long sinogram_stride, offset;

    LINOPS_HD RayThread(int idx, int n_images, int n_views, int depth, int n_detector) {
        k = idx % n_detector;
        int rest = idx / n_detector;
        d = rest % depth;
        rest /= depth;
        v = rest % n_views;
        first_image = (rest / n_views) * LINOPS_RADON_IMAGE_TILE;
        images = min_i(LINOPS_RADON_IMAGE_TILE, n_images - first_image);
        sinogram_stride = static_cast<long long>(n_views) * depth * n_detector;
        offset = first_image * sinogram_stride + (static_cast<long long>(v) * depth + d) * n_detector + k;
    }
};

// ------------------------------------------------------------------------------------------------------
// forward: one thread per (image tile, view, slice, bin), a gather along the ray; optionally A x - subtract.
template <typename T>
LINOPS_HD void radon_forward_body(int idx, const T* x, T* y, const T* subtract, int has_subtract,
                                  const int* ray_int, const T* ray_real, int n_images, int height, int width,
                                  int n_views, int depth, int n_detector) {
    const RayThread th(idx, n_images, n_views, depth, n_detector);
    const long long image_stride = static_cast<long long>(depth) * height * width;
    const T* plane = x + (static_cast<long long>(th.first_image) * depth + th.d) * height * width;
    const JosephRay<T> ray = load_ray(ray_int, ray_real, th.v * n_detector + th.k);
    const int n_across = ray.steep ? width : height;
    const int stride_along = ray.steep ? width : 1;
    const int stride_across = ray.steep ? 1 : width;

    T acc[LINOPS_RADON_IMAGE_TILE];
    for (int t = 0; t < LINOPS_RADON_IMAGE_TILE; ++t) acc[t] = 0;
    for (int i = ray.first; i < ray.last; ++i) {
        const JosephSample<T> s = ray.sample(i);
        T w0, w1;
        joseph_weights(s.f, ray.w, w0, w1);
        const int pixel = i * stride_along + s.lower * stride_across;
        const bool has0 = s.lower >= 0 && s.lower < n_across;
        const bool has1 = s.lower >= -1 && s.lower + 1 < n_across;
#pragma unroll
        for (int t = 0; t < LINOPS_RADON_IMAGE_TILE; ++t) {
            if (t >= th.images) break;
            const T* image = plane + t * image_stride;
            if (has0) acc[t] = fma_t(w0, image[pixel], acc[t]);
            if (has1) acc[t] = fma_t(w1, image[pixel + stride_across], acc[t]);
        }
    }
    for (int t = 0; t < th.images; ++t) {
        const long long o = th.offset + t * th.sinogram_stride;
        y[o] = has_subtract ? acc[t] - subtract[o] : acc[t];
    }
}

// ------------------------------------------------------------------------------------------------------
// adjoint by scattering: one thread per (image tile, view, slice, bin) adds y w into the pixels of its ray
// (x zeroed first).
template <typename T>
LINOPS_HD void radon_adjoint_scatter_body(int idx, const T* y, T* x, const int* ray_int, const T* ray_real,
                                          int n_images, int height, int width, int n_views, int depth,
                                          int n_detector) {
    const RayThread th(idx, n_images, n_views, depth, n_detector);
    const long long image_stride = static_cast<long long>(depth) * height * width;
    T* plane = x + (static_cast<long long>(th.first_image) * depth + th.d) * height * width;
    T value[LINOPS_RADON_IMAGE_TILE];
    for (int t = 0; t < LINOPS_RADON_IMAGE_TILE; ++t)
        value[t] = t < th.images ? y[th.offset + t * th.sinogram_stride] : T(0);
    const JosephRay<T> ray = load_ray(ray_int, ray_real, th.v * n_detector + th.k);
    const int n_across = ray.steep ? width : height;
    const int stride_along = ray.steep ? width : 1;
    const int stride_across = ray.steep ? 1 : width;

    for (int i = ray.first; i < ray.last; ++i) {
        const JosephSample<T> s = ray.sample(i);
        T w0, w1;
        joseph_weights(s.f, ray.w, w0, w1);
        const int pixel = i * stride_along + s.lower * stride_across;
        const bool has0 = s.lower >= 0 && s.lower < n_across;
        const bool has1 = s.lower >= -1 && s.lower + 1 < n_across;
#pragma unroll
        for (int t = 0; t < LINOPS_RADON_IMAGE_TILE; ++t) {
            if (t >= th.images) break;
            T* image = plane + t * image_stride;
            if (has0) add_to(image + pixel, w0 * value[t]);
            if (has1) add_to(image + pixel + stride_across, w1 * value[t]);
        }
    }
}

// ------------------------------------------------------------------------------------------------------
// adjoint by gathering: one thread per (image tile, slice, pixel (r, c)) sums A[j, pixel] y[j] over the rays j
// that reach the pixel.
//
// A ray reaches pixel (r, c) only through a sample with lower in {c - 1, c} on row r (steep) or lower in
// {r - 1, r} on column c (flat); such a sample lies in the box [x_{c-1}, x_{c+1}] x [y_{r+1}, y_{r-1}], so the
// ray meets that box and its bin lies between the box corners' projections onto the detector (one bin of
// margin either side for rounding). view_real[6 v + 0..5] = cos, sin, num, den_scale, den_const, centre maps a
// point q to the fractional bin  centre + num <q, e_s> / (den_const + den_scale <q, e_r>):
// parallel beam num = 1 / spacing, den = (0, 1); fan beam num = D_sd / spacing, den = (1, D_so) (a corner
// behind the source, den <= 0, makes the whole detector the candidate range). Every candidate ray then
// evaluates `joseph_sample` at the pixel's step exactly as the forward does, and contributes only if it hits
// the pixel, with the forward's weight.
template <typename T>
LINOPS_HD void radon_adjoint_gather_body(int idx, const T* y, T* x, const int* ray_int, const T* ray_real,
                                         const T* view_real, T pixel_size, int n_images, int height, int width,
                                         int n_views, int depth, int n_detector) {
    const int c = idx % width;
    int rest = idx / width;
    const int r = rest % height;
    rest /= height;
    const int d = rest % depth;
    const int first_image = (rest / depth) * LINOPS_RADON_IMAGE_TILE;
    const int images = min_i(LINOPS_RADON_IMAGE_TILE, n_images - first_image);
    const long long sinogram_stride = static_cast<long long>(n_views) * depth * n_detector;
    const T* sino = y + first_image * sinogram_stride + d * n_detector;

    // box corners in physical coordinates (x right, y up, origin at the image centre)
    const T x_lo = (static_cast<T>(c - 1) - static_cast<T>(width - 1) / 2) * pixel_size;
    const T x_hi = x_lo + 2 * pixel_size;
    const T y_hi = (static_cast<T>(height - 1) / 2 - static_cast<T>(r - 1)) * pixel_size;
    const T y_lo = y_hi - 2 * pixel_size;
    const T corner_x[4] = {x_lo, x_hi, x_lo, x_hi};
    const T corner_y[4] = {y_lo, y_lo, y_hi, y_hi};
    const T big = static_cast<T>(n_detector + 2);

    T acc[LINOPS_RADON_IMAGE_TILE];
    for (int t = 0; t < LINOPS_RADON_IMAGE_TILE; ++t) acc[t] = 0;
    for (int v = 0; v < n_views; ++v) {
        const T* view = view_real + 6 * v;
        const T cos_t = view[0], sin_t = view[1], num = view[2], den_scale = view[3], den_const = view[4];
        T k_min = big, k_max = -big;
        bool behind = false;
        for (int q = 0; q < 4; ++q) {
            const T along = corner_x[q] * cos_t + corner_y[q] * sin_t;   // <q, e_s>
            const T toward = corner_y[q] * cos_t - corner_x[q] * sin_t;  // <q, e_r>
            const T den = den_const + den_scale * toward;
            if (!(den > 0)) behind = true;
            const T kf = view[5] + num * along / den;
            k_min = min_t(k_min, kf);
            k_max = max_t(k_max, kf);
        }
        int k_first = 0, k_last = n_detector - 1;
        if (!behind) {
            k_first = max_i(0, static_cast<int>(floor_t(max_t(k_min, -big))) - 1);
            k_last = min_i(n_detector - 1, static_cast<int>(ceil_t(min_t(k_max, big))) + 1);
        }
        const T* bins = sino + static_cast<long long>(v) * depth * n_detector;
        for (int k = k_first; k <= k_last; ++k) {
            const JosephRay<T> ray = load_ray(ray_int, ray_real, v * n_detector + k);
            const int i = ray.steep ? r : c;       // the step that visits this pixel's row (or column)
            const int across = ray.steep ? c : r;  // and its position across
            if (i < ray.first || i >= ray.last) continue;
            const JosephSample<T> s = ray.sample(i);
            if (s.lower != across && s.lower + 1 != across) continue;
            T w0, w1;
            joseph_weights(s.f, ray.w, w0, w1);
            const T weight = s.lower == across ? w0 : w1;
#pragma unroll
            for (int t = 0; t < LINOPS_RADON_IMAGE_TILE; ++t) {
                if (t >= images) break;
                acc[t] = fma_t(weight, bins[t * sinogram_stride + k], acc[t]);
            }
        }
    }
    const long long image_stride = static_cast<long long>(depth) * height * width;
    const long long out = first_image * image_stride + (static_cast<long long>(d) * height + r) * width + c;
    for (int t = 0; t < images; ++t) x[out + t * image_stride] = acc[t];
}

// ------------------------------------------------------------------------------------------------------
// One thread per index below `total`: (image tiles x views x slices x bins) for the forward and the scatter,
// (image tiles x slices x rows x columns) for the gather; n_images is the number of images of the launch.
#define LINOPS_RADON_KERNELS(T, SUFFIX)                                                                        \
    extern "C" __global__ void radon_forward_##SUFFIX(int total, const T* x, T* y, const T* subtract,         \
                                                      int has_subtract, const int* ray_int, const T* ray_real,  \
                                                      int n_images, int height, int width, int n_views,        \
                                                      int depth, int n_detector) {                             \
        const int idx = LINOPS_THREAD_INDEX;                                                                   \
        if (idx < total)                                                                                       \
            radon_forward_body<T>(idx, x, y, subtract, has_subtract, ray_int, ray_real, n_images, height,      \
                                  width, n_views, depth, n_detector);                                          \
    }                                                                                                          \
    extern "C" __global__ void radon_adjoint_scatter_##SUFFIX(int total, const T* y, T* x, const int* ray_int,  \
                                                              const T* ray_real, int n_images, int height,     \
                                                              int width, int n_views, int depth,                \
                                                              int n_detector) {                                \
        const int idx = LINOPS_THREAD_INDEX;                                                                   \
        if (idx < total)                                                                                       \
            radon_adjoint_scatter_body<T>(idx, y, x, ray_int, ray_real, n_images, height, width, n_views,      \
                                          depth, n_detector);                                                  \
    }                                                                                                          \
    extern "C" __global__ void radon_adjoint_gather_##SUFFIX(int total, const T* y, T* x, const int* ray_int,   \
                                                             const T* ray_real, const T* view_real,            \
                                                             T pixel_size, int n_images, int height, int width, \
                                                             int n_views, int depth, int n_detector) {         \
        const int idx = LINOPS_THREAD_INDEX;                                                                   \
        if (idx < total)                                                                                       \
            radon_adjoint_gather_body<T>(idx, y, x, ray_int, ray_real, view_real, pixel_size, n_images,        \
                                         height, width, n_views, depth, n_detector);                           \
    }

LINOPS_RADON_KERNELS(float, f32)
LINOPS_RADON_KERNELS(double, f64)
