// bias_grad.cu: the gradient of a per-channel bias, a deterministic sum over everything but the channel.
//
//   grad     is (outer, channels, inner): grad[o][c][s], the gradient of the biased layer's output
//   gradBias is (channels): gradBias[c] = (accumulate ? gradBias[c] : 0) + sum over o, s of grad[o][c][s]
//
// The engine's two shapes, as bias_relu.cu: (1, C, N*H*W) for a convolution ([C][N][H][W] activations)
// and (N, F, 1) for a fully connected layer ([N][F]). With accumulate 0, gradBias is only written (NaN in
// it does not propagate); with accumulate 1 the sum is added to it, one more rounding (gradients summed
// over several calls, e.g. the two groups of a grouped convolution or micro-batches).
//
// Deterministic, no atomics: every sum is taken in an order fixed by the shape and BLOCK_SIZE alone, so
// the same input gives the same bits on every run. Accuracy: a thread adds its terms BIAS_GRAD_CHUNK at a
// time into a chunk sum and adds the chunk sums into its total (blocked summation); the threads' totals
// meet in a tree. A term then passes through at most (CHUNK - 1) + ceil(m / CHUNK) + log2(BLOCK_SIZE) + 1
// additions, m the thread's term count, instead of m: for conv1's 55*55*128 = 387 200 terms per channel,
// m = 1513 and 31 + 48 + 8 + 1 = 88 additions rather than 1513 (the relative error bound is that times 2^-24).
//
// bias_grad_kernel1, inner > 1: one block per channel. Thread t takes s = t, t + BLOCK_SIZE, ... of each
// (o, c) row, so consecutive threads read consecutive floats (coalesced); then a shared-memory tree.
// Launch: block (BLOCK_SIZE), grid (channels).
//
// bias_grad_columns_kernel1, inner == 1: one thread per channel, each walking its column of the [N][F]
// matrix (o = 0 .. N-1); consecutive threads read consecutive channels of a row (coalesced). Blocked the
// same way, no tree (m = outer).
// Launch: 1-D blocks of any size (the host uses 256), grid ceil(channels / block).
//
// Cost per term: 4 bytes read, 1 FLOP: memory-bound. Per channel, 4 bytes written (and 4 read when
// accumulating).
#include "prelude.h"

#ifndef BLOCK_SIZE
#define BLOCK_SIZE 256  // 8 warps per channel; conv1's 96 channels fill 96 SMs with one block each
#endif
#if BLOCK_SIZE < 1 || (BLOCK_SIZE & (BLOCK_SIZE - 1)) != 0
#error "bias_grad.cu: BLOCK_SIZE must be a power of two (the tree reduction halves it)"
#endif
#ifndef BIAS_GRAD_CHUNK
#define BIAS_GRAD_CHUNK 32  // terms per chunk sum: near sqrt(m) for the engine's convolutions at batch 128
#endif

KERNEL void bias_grad_kernel1(GLOBAL float* __restrict__ gradBias, const GLOBAL float* __restrict__ grad,
                              int outer, int channels, int inner, int accumulate)
{
    __shared__ float partial[BLOCK_SIZE];
    const int tid = (int)threadIdx.x;
    const int c = (int)blockIdx.x;

    float total = 0.0f, chunk = 0.0f;
    int inChunk = 0;
    for (int o = 0; o < outer; o++) {
        const GLOBAL float* row = grad + (o * channels + c) * inner;
        for (int s = tid; s < inner; s += BLOCK_SIZE) {
            chunk += row[s];
            if (++inChunk == BIAS_GRAD_CHUNK) {
                total += chunk;
                chunk = 0.0f;
                inChunk = 0;
            }
        }
    }
    partial[tid] = total + chunk;
    __syncthreads();
    for (int width = BLOCK_SIZE / 2; width > 0; width /= 2) {
        if (tid < width) partial[tid] += partial[tid + width];
        __syncthreads();
    }
    if (tid == 0) gradBias[c] = accumulate != 0 ? gradBias[c] + partial[0] : partial[0];
}

KERNEL void bias_grad_columns_kernel1(GLOBAL float* __restrict__ gradBias, const GLOBAL float* __restrict__ grad,
                                      int outer, int channels, int accumulate)
{
    const int c = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (c >= channels) return;

    float total = 0.0f, chunk = 0.0f;
    int inChunk = 0;
    for (int o = 0; o < outer; o++) {
        chunk += grad[o * channels + c];
        if (++inChunk == BIAS_GRAD_CHUNK) {
            total += chunk;
            chunk = 0.0f;
            inChunk = 0;
        }
    }
    const float sum = total + chunk;
    gradBias[c] = accumulate != 0 ? gradBias[c] + sum : sum;
}
