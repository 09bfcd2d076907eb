// bias_relu.cu: adds a per-channel bias in place, then optionally applies ReLU.
//
//   x    is (outer, channels, inner): x[o][c][s]
//   bias is (channels)
//   x[o][c][s] = x[o][c][s] + bias[c], then max(x, 0) when relu != 0
//
// The engine uses two shapes: (1, C, N*H*W) after a convolution ([C][N][H][W] activations) and
// (N, F, 1) after a fully connected layer ([N][F] activations). One thread per element over the flat
// index, so both shapes get the same launch: consecutive threads touch consecutive elements of x
// (coalesced), and bias[c] is either the same for a whole warp (inner large: one broadcast load) or
// consecutive too (inner = 1). There is no row of threads per (o, c) that would idle when inner = 1.
//
// ReLU keeps NaN (NaN < 0 is false), as PyTorch's relu does: a NaN must not turn into a silent 0.
// x + bias is one float addition, so the result equals the double reference rounded to float exactly.
//
// Launch: 1-D blocks of any size (the host uses 256), grid ceil(outer*channels*inner / block). The host
// guarantees that count fits in an int.
// Cost per element: 4 bytes read + 4 bytes written (+ the bias, from cache), 1-2 FLOPs: memory-bound.
#include "prelude.h"

KERNEL void bias_relu_kernel1(GLOBAL float* __restrict__ x, const GLOBAL float* __restrict__ bias,
                              int outer, int channels, int inner, int relu)
{
    const int count = outer * channels * inner;
    const int index = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (index >= count) return;
    const int c = (index / inner) % channels;
    float value = x[index] + bias[c];
    if (relu != 0 && value < 0.0f) value = 0.0f;
    x[index] = value;
}
