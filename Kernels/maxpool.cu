// maxpool.cu: max pooling with VALID windows (every window lies fully inside the image).
//
//   in  is (C, N, H, W): in[c][n][h][w]
//   out element (c, n, y, x) = max over i, j < size of in[c][n][y*stride + i][x*stride + j],
//       stored at out[c*outStrideC + n*outStrideN + y*outW + x]
//
// The two output strides give both layouts the engine needs from one kernel:
//   [C][N][Ho][Wo] for the next convolution:          outStrideC = N*Ho*Wo, outStrideN = Ho*Wo
//   [N][C*Ho*Wo] for fc6 (pool5's "NCHW flatten"):    outStrideC = Ho*Wo,   outStrideN = C*Ho*Wo
//
// A window holding NaN gives NaN (as TensorFlow and PyTorch do): `v > m` alone would skip it, so a NaN
// is taken explicitly, and once taken no number compares greater. The maximum starts from the window's
// first element rather than from -FLT_MAX, so a window of -inf gives -inf. Ties keep the first value in
// window order (-0 and +0 compare equal); selection involves no arithmetic, so results are exact.
//
// One thread per output element: blockIdx.y is the channel c, and the threads of a channel take its
// outputs in (n, y, x) order, so consecutive threads write consecutive x (runs of Wo floats in either
// layout) and read input columns `stride` floats apart. Two divisions per output find (n, y, x); each
// output then reads size^2 inputs.
// Two entry points, the same result to the last bit; the host picks one per device (NetworkKernels.Target):
//
// maxpool_kernel1, for GPUs: one thread per output, as above.
// Launch: 1-D blocks of any size (the host uses 256), grid (ceil(N*Ho*Wo / block), C). The host checks
// that the windows fit, that C*N*H*W and the output extent fit in an int, and that C <= 65535.
//
// maxpool_kernel2, for CPUs (PoCL): one work-item per (image n, channel c) plane. For each output row
// the row itself is the running maximum: out = the windows' first elements, then for each further tap
// (i, j) in window order out[x] = in[..][x*stride + j] when greater or NaN. The taps are visited in the
// same order as kernel1's, so ties and NaNs resolve the same way. The loop over x, innermost, has no
// division and vectorises (a strided gather; stride 2 is spelled out so that its loads are two
// interleaved streams); kernel1's window loop keeps PoCL's work-item loop scalar. Uncoalesced on a GPU.
// Launch: 1-D blocks of any size (the host uses 16), grid (ceil(N / block), C).
// Fused input activation: when `biased` is not 0 the input is conv5's raw GEMM output and every value of a
// window is bias_relu_value(in, input_bias[c]) (prelude.h) before it is compared, so pool5 reads conv5 once
// and no bias+ReLU pass writes it first. Applied to each value, not to the maximum: the same selection,
// signed zeros and NaN payloads included, as bias_relu.cu then this kernel. `input_bias` is not read when
// `biased` is 0.
//
// Cost per output: size^2 reads (4 bytes each; with stride < size neighbouring windows share them
// through the cache, so about stride^2 * 4 bytes from DRAM) + 4 bytes written, size^2 - 1 comparisons:
// memory-bound.
#include "prelude.h"

KERNEL void maxpool_kernel1(GLOBAL act_t* __restrict__ out, const GLOBAL act_t* __restrict__ in,
                            const GLOBAL float* __restrict__ input_bias, int biased, int channels, int batch, int height, int width, int outH, int outW,
                            int size, int stride, int outStrideC, int outStrideN)
{
    const int index = (int)(blockIdx.x * blockDim.x + threadIdx.x);  // (n*outH + y)*outW + x
    if (index >= batch * outH * outW) return;
    const int c = (int)blockIdx.y;
    const int row = index / outW;  // n*outH + y
    const int x = index - row * outW;
    const int n = row / outH;
    const int y = row - n * outH;

    const GLOBAL act_t* window = in + ((c * batch + n) * height + y * stride) * width + x * stride;
    const float b = biased != 0 ? input_bias[c] : 0.0f;
    float m = biased != 0 ? bias_relu_value(LOAD_ACT(window, 0), b) : LOAD_ACT(window, 0);
    for (int i = 0; i < size; i++) {
        for (int j = 0; j < size; j++) {
            float v = LOAD_ACT(window, i * width + j);
            if (biased != 0) v = bias_relu_value(v, b);
            if (v > m || v != v) m = v;  // v != v: v is NaN
        }
    }
    STORE_ACT(out, c * outStrideC + n * outStrideN + y * outW + x, m);
}

KERNEL void maxpool_kernel2(GLOBAL act_t* __restrict__ out, const GLOBAL act_t* __restrict__ in,
                            const GLOBAL float* __restrict__ input_bias, int biased, int channels, int batch, int height, int width, int outH, int outW,
                            int size, int stride, int outStrideC, int outStrideN)
{
    const int n = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (n >= batch) return;
    const int c = (int)blockIdx.y;
    const GLOBAL act_t* plane = in + (c * batch + n) * height * width;
    GLOBAL act_t* dst = out + c * outStrideC + n * outStrideN;
    if (biased != 0) {
        // The same loops as below, each value activated as it is read.
        const float b = input_bias[c];
        for (int y = 0; y < outH; y++) {
            GLOBAL act_t* o = dst + y * outW;
            const GLOBAL act_t* top = plane + y * stride * width;
            for (int x = 0; x < outW; x++) STORE_ACT(o, x, bias_relu_value(LOAD_ACT(top, x * stride), b));
            for (int i = 0; i < size; i++) {
                const GLOBAL act_t* r = top + i * width;
                for (int j = i == 0 ? 1 : 0; j < size; j++) {
                    if (stride == 2) {
                        for (int x = 0; x < outW; x++) {
                            const float v = bias_relu_value(LOAD_ACT(r, 2 * x + j), b);
                            const float m = LOAD_ACT(o, x);
                            STORE_ACT(o, x, (v > m || v != v) ? v : m);
                        }
                    } else {
                        for (int x = 0; x < outW; x++) {
                            const float v = bias_relu_value(LOAD_ACT(r, x * stride + j), b);
                            const float m = LOAD_ACT(o, x);
                            STORE_ACT(o, x, (v > m || v != v) ? v : m);
                        }
                    }
                }
            }
        }
        return;
    }
    for (int y = 0; y < outH; y++) {
        GLOBAL act_t* o = dst + y * outW;
        const GLOBAL act_t* top = plane + y * stride * width;  // the windows' first row
        if (stride == 2) {
            for (int x = 0; x < outW; x++) STORE_ACT(o, x, LOAD_ACT(top, 2 * x));
        } else {
            for (int x = 0; x < outW; x++) STORE_ACT(o, x, LOAD_ACT(top, x * stride));
        }
        for (int i = 0; i < size; i++) {
            const GLOBAL act_t* r = top + i * width;
            for (int j = i == 0 ? 1 : 0; j < size; j++) {
                if (stride == 2) {
                    for (int x = 0; x < outW; x++) {
                        const float v = LOAD_ACT(r, 2 * x + j);
                        const float m = LOAD_ACT(o, x);
                        STORE_ACT(o, x, (v > m || v != v) ? v : m);  // v != v: v is NaN
                    }
                } else {
                    for (int x = 0; x < outW; x++) {
                        const float v = LOAD_ACT(r, x * stride + j);
                        const float m = LOAD_ACT(o, x);
                        STORE_ACT(o, x, (v > m || v != v) ? v : m);
                    }
                }
            }
        }
    }
}
