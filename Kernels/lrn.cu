// lrn.cu: local response normalisation across channels, with TensorFlow's semantics.
//
//   in, out are (C, S): in[c][s], S = N*H*W (the [C][N][H][W] activations with the batch inside)
//   sqr_sum[c][s] = sum of in[c'][s]^2 for c' in [c - radius, c + radius] intersected with [0, C)
//   out[c][s]     = in[c][s] / (bias + alpha * sqr_sum[c][s])^beta
//
// AlexNet uses radius 2, alpha 2e-5, beta 0.75, bias 1 (docs/model.md); all four are parameters.
// One thread per output element; blockIdx.y is the channel c and consecutive threads take consecutive s,
// so no thread divides an index, and each of the 2*radius + 1 loads of the window is coalesced across
// a warp, and so is the store. The window's bounds are the same for the whole block. The window is summed afresh for
// each output rather than slid along c: a sliding sum (add the entering channel, subtract the leaving
// one) would carry the rounding error of a large value long after it left the window.
//
// (bias + alpha*sqr_sum)^-beta: for beta = 0.75 as rsqrt(x) * sqrt(rsqrt(x)), two cheap special-function
// operations instead of powf's logarithm and exponential (about 4 ulp, within the check's tolerance);
// powf for any other beta. The host requires bias > 0 and alpha >= 0, so the base is >= bias > 0.
//
// Two entry points, the same arithmetic in the same order (window summed from its first channel, the
// same power); the host picks one per device (NetworkKernels.Target):
//
// lrn_kernel1, for GPUs: one thread per element, as above.
// Launch: 1-D blocks of any size (the host uses 256), grid (ceil(S / block), C). The host guarantees
// C*S fits in an int and C <= 65535.
//
// lrn_kernel2, for CPUs (PoCL): one work-item per (run of `segment` consecutive s, channel c). The window
// loop moves outside the loop over s, which the output run itself serves as accumulator for: out = 0,
// then out += in[cc]^2 for each channel cc of the window in order, then out = in * out-power. Every inner
// loop is then a straight pass over contiguous floats that LLVM vectorises (kernel1's per-element window
// loop keeps PoCL's work-item loop scalar), and a run of 1024 floats (4 KB) stays in the L1 cache for
// the 2*radius + 3 passes over it. Uncoalesced on a GPU, hence CPU only.
// Launch: 1-D blocks of any size (the host uses 16), grid (ceil(ceil(S / segment) / block), C).
// Fused input activation: when `biased` is not 0 the input is a convolution's raw GEMM output and every
// value read is first bias_relu_value(in[c][s], input_bias[c]) (prelude.h), the conv's bias and ReLU, so
// conv1/conv2 need no pass of their own: the same numbers as bias_relu.cu then this kernel, without writing
// and reading the activation once more. `input_bias` is not read when `biased` is 0 (any buffer will do).
//
// Cost per element: 4 bytes written and 4 bytes read from DRAM (the other 2*radius reads of a window hit
// the cache: neighbouring channels are read by neighbouring blocks at the same time); about
// 2*(2*radius + 1) + 6 FLOPs. Memory-bound, as long as the fast path replaces powf.
#include "prelude.h"

// The normalised value of element (c, s): lrn_kernel1's arithmetic, and lrn_maxpool_kernel1's, which
// must give the same numbers.
DEVICE float lrn_value(const GLOBAL act_t* __restrict__ in, const GLOBAL float* __restrict__ input_bias, int biased,
                       int channels, int inner, int c, int s, int radius, float alpha, float beta, float bias)
{
    // The window [first, last], clipped to the channels; written so that a huge radius cannot overflow.
    const int first = c > radius ? c - radius : 0;
    const int last = channels - 1 - c > radius ? c + radius : channels - 1;
    float sqrSum = 0.0f;
    for (int cc = first; cc <= last; cc++) {
        float v = LOAD_ACT(in, cc * inner + s);
        if (biased != 0) v = bias_relu_value(v, input_bias[cc]);
        sqrSum += v * v;
    }

    const float base = bias + alpha * sqrSum;
    float factor;  // base^-beta
    if (beta == 0.75f) {
        const float r = rsqrtf(base);  // base^-1/2
        factor = r * sqrtf(r);         // base^-1/2 * base^-1/4
    } else {
        factor = powf(base, -beta);
    }
    const float x = biased != 0 ? bias_relu_value(LOAD_ACT(in, c * inner + s), input_bias[c]) : LOAD_ACT(in, c * inner + s);
    return x * factor;
}

KERNEL void lrn_kernel1(GLOBAL act_t* __restrict__ out, const GLOBAL act_t* __restrict__ in,
                        const GLOBAL float* __restrict__ input_bias, int biased, int channels, int inner, int radius, float alpha, float beta, float bias)
{
    const int s = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (s >= inner) return;
    const int c = (int)blockIdx.y;
    STORE_ACT(out, c * inner + s, lrn_value(in, input_bias, biased, channels, inner, c, s, radius, alpha, beta, bias));
}

// lrn_maxpool_kernel1, for GPUs: the LRN and the VALID max pooling after it in one pass, so the normalised
// activation (norm1, norm2) is never written: one thread per pool output (c, n, y, x), as maxpool_kernel1
// lays them out (blockIdx.y = c, the outputs of a channel in (n, y, x) order, written at c*outStrideC +
// n*outStrideN + y*outW + x), computing lrn_value for each of the size^2 elements of its window and keeping
// the maximum with maxpool.cu's rules (the first element starts it; a NaN is taken and stays). Windows
// overlap (3x3, stride 2), so each normalised value is computed about 2.25 times: a few more FLOPs for a
// write and a read of the whole normalised tensor fewer. The forward pass uses it when nothing asks for the
// LRN's output (AlexNetModel.Features launches the two kernels, so norm1/norm2 can be read).
// Launch: 1-D blocks of any size (the host uses 256), grid (ceil(N*Ho*Wo / block), C). The host checks the
// windows fit, that C*N*H*W and the output extent fit in an int, and that C <= 65535.
KERNEL void lrn_maxpool_kernel1(GLOBAL act_t* __restrict__ out, const GLOBAL act_t* __restrict__ in,
                                const GLOBAL float* __restrict__ input_bias, int biased, int channels, int batch,
                                int height, int width, int outH, int outW, int size, int stride, int outStrideC,
                                int outStrideN, int radius, float alpha, float beta, float bias)
{
    const int index = (int)(blockIdx.x * blockDim.x + threadIdx.x);  // (n*outH + y)*outW + x
    if (index >= batch * outH * outW) return;
    const int c = (int)blockIdx.y;
    const int row = index / outW;  // n*outH + y
    const int x = index - row * outW;
    const int n = row / outH;
    const int y = row - n * outH;
    const int inner = batch * height * width;
    const int origin = (n * height + y * stride) * width + x * stride;  // s of the window's first element

    float m = lrn_value(in, input_bias, biased, channels, inner, c, origin, radius, alpha, beta, bias);
    for (int i = 0; i < size; i++) {
        for (int j = 0; j < size; j++) {
            if (i == 0 && j == 0) continue;
            const float v = lrn_value(in, input_bias, biased, channels, inner, c, origin + i * width + j, radius, alpha, beta, bias);
            if (v > m || v != v) m = v;  // v != v: v is NaN
        }
    }
    STORE_ACT(out, c * outStrideC + n * outStrideN + y * outW + x, m);
}

KERNEL void lrn_kernel2(GLOBAL act_t* __restrict__ out, const GLOBAL act_t* __restrict__ in,
                        const GLOBAL float* __restrict__ input_bias, int biased, int channels, int inner, int radius, float alpha, float beta, float bias, int segment)
{
    const int run = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    const int begin = run * segment;
    if (begin >= inner) return;
    const int count = inner - begin < segment ? inner - begin : segment;
    const int c = (int)blockIdx.y;
#if !ACT_FLOAT
    // 16-bit storage: the output cannot hold the running sums of squares (they would be rounded at every
    // step), so each element is computed whole, as lrn_kernel1 does.
    for (int t = 0; t < count; t++)
        STORE_ACT(out, c * inner + begin + t, lrn_value(in, input_bias, biased, channels, inner, c, begin + t, radius, alpha, beta, bias));
#else
    GLOBAL float* o = out + c * inner + begin;
    const GLOBAL float* x = in + c * inner + begin;

    const int first = c > radius ? c - radius : 0;
    const int last = channels - 1 - c > radius ? c + radius : channels - 1;
    for (int t = 0; t < count; t++) o[t] = 0.0f;
    for (int cc = first; cc <= last; cc++) {
        const GLOBAL float* w = in + cc * inner + begin;
        if (biased != 0) {
            const float b = input_bias[cc];
            for (int t = 0; t < count; t++) {
                const float v = bias_relu_value(w[t], b);
                o[t] += v * v;
            }
        } else {
            for (int t = 0; t < count; t++) o[t] += w[t] * w[t];
        }
    }
    // The centre value again, activated as in the window (b = 0 and no ReLU when not biased).
    const float b = biased != 0 ? input_bias[c] : 0.0f;
    if (beta == 0.75f) {
        for (int t = 0; t < count; t++) {
            const float r = rsqrtf(bias + alpha * o[t]);
            const float v = biased != 0 ? bias_relu_value(x[t], b) : x[t];
            o[t] = v * (r * sqrtf(r));
        }
    } else {
        for (int t = 0; t < count; t++) {
            const float v = biased != 0 ? bias_relu_value(x[t], b) : x[t];
            o[t] = v * powf(bias + alpha * o[t], -beta);
        }
    }
#endif
}
