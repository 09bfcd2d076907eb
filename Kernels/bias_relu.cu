// bias_relu.cu: adds a per-channel bias in place, then optionally applies ReLU.
//
//   x    is (outer, channels, inner): x[o][c][s]
//   bias is (channels)
//   x[o][c][s] = x[o][c][s] + bias[c], then max(x, 0) when relu != 0
//
// The engine uses two shapes: (1, C, N*H*W) after a convolution ([C][N][H][W] activations) and
// (N, F, 1) after a fully connected layer ([N][F] activations). The launch shape follows inner, so that
// consecutive threads always touch consecutive elements (coalesced) and no thread divides an index
// (integer division costs tens of instructions on a GPU and does not vectorise on a CPU):
//   inner > 1:  grid (ceil(inner / block), channels, outer): thread (x, c, o) = (s, blockIdx.y, blockIdx.z);
//               bias[c] is the same for the whole block (one broadcast load);
//   inner == 1: grid (ceil(channels / block), outer, 1):     thread (x, o) = (c, blockIdx.y);
//               consecutive threads read consecutive biases.
// The second shape is what keeps the fully connected case from launching a block per element.
//
// ReLU keeps NaN (NaN < 0 is false), as PyTorch's relu does: a NaN must not turn into a silent 0.
// x + bias is one float addition, so the result equals the double reference rounded to float exactly.
//
// Launch: 1-D blocks of any size (the host uses 256). The host guarantees outer*channels*inner fits in
// an int and the grid's y and z sizes stay within 65535.
//
// bias_relu_kernel2, for CPUs (PoCL), inner > 1 only: one work-item per run of `segment` consecutive s
// of one (o, c), a straight loop LLVM vectorises with the bias in a register. kernel1's 256-element
// work-groups cost PoCL a fixed overhead each (conv1 at batch 32 launches 36 000 of them); a work-item
// of 4096 elements pays it once per 16 KB. The fully connected case (inner == 1) keeps kernel1 on every
// device: a few thousand elements, no gain to be had. Uncoalesced on a GPU, hence CPU only; same result
// to the last bit.
// Launch: 1-D blocks of any size (the host uses 16), grid (ceil(ceil(inner / segment) / block), channels, outer).
// Cost per element: 4 bytes read + 4 bytes written (+ the bias, from cache), 1-2 FLOPs: memory-bound.
#include "prelude.h"

KERNEL void bias_relu_kernel1(GLOBAL act_t* __restrict__ x, const GLOBAL float* __restrict__ bias,
                              int outer, int channels, int inner, int relu)
{
    const int t = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    int o, c, s;
    if (inner == 1) {
        o = (int)blockIdx.y;
        c = t;
        s = 0;
        if (c >= channels) return;
    } else {
        o = (int)blockIdx.z;
        c = (int)blockIdx.y;
        s = t;
        if (s >= inner) return;
    }
    const int index = (o * channels + c) * inner + s;
    float value = LOAD_ACT(x, index) + bias[c];
    if (relu != 0 && value < 0.0f) value = 0.0f;
    STORE_ACT(x, index, value);
}

KERNEL void bias_relu_kernel2(GLOBAL act_t* __restrict__ x, const GLOBAL float* __restrict__ bias,
                              int outer, int channels, int inner, int relu, int segment)
{
    const int run = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    const int begin = run * segment;
    if (begin >= inner) return;
    const int count = inner - begin < segment ? inner - begin : segment;
    const int c = (int)blockIdx.y;
    const int o = (int)blockIdx.z;
    GLOBAL act_t* p = x + (o * channels + c) * inner + begin;
    const float b = bias[c];
    if (relu != 0) {
        for (int t = 0; t < count; t++) {
            const float value = LOAD_ACT(p, t) + b;
            STORE_ACT(p, t, value < 0.0f ? 0.0f : value);  // NaN < 0 is false: NaN stays
        }
    } else {
        for (int t = 0; t < count; t++) STORE_ACT(p, t, LOAD_ACT(p, t) + b);
    }
}
