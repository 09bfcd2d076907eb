// softmax.cu: fc8's bias, then a numerically stable softmax over each row.
//
//   logits is (rows, classes): logits[r][k], as fc8's GEMM left it ([N][F], image-major); updated in
//          place to logits + bias, the layer's exported output. FP32 in every precision: with 16-bit
//          activations fc8's GEMM still writes its FP32 accumulation here (a bf16 logit of 20 would be
//          off by up to 0.04, which a peaked softmax turns into a like error in the top probability)
//   bias   is (classes)
//   prob   is (rows, classes): prob[r][k] = exp(z[r][k] - max_k z[r][k]) / sum_k exp(z[r][k] - max)
//          with z = logits + bias
//
// Subtracting the row's maximum keeps every exponent <= 0, so exp cannot overflow and the largest term
// is exactly 1. One block per row, three passes over the row with a block-stride loop (consecutive
// threads take consecutive classes: coalesced), and a shared-memory tree reduction after the first two:
//   1. z = logits + bias, written back; the row maximum;
//   2. e = exp(z - max), stored in prob; their sum;
//   3. prob = e / sum.
// Each thread re-reads only the elements it wrote itself, so passes 2 and 3 need no barrier of their own.
// A NaN among the logits makes the whole row of prob NaN (through the sum), never a plausible number.
//
// Launch: block (BLOCK_SIZE), grid (rows). Any number of classes >= 1.
// Cost per element: 4 bytes read and 4 written by pass 1, 4 read and 4 written by pass 2, 4 read and 4
// written by pass 3 (passes 2 and 3 mostly from cache), plus the bias; about 10 FLOPs with the exp.
// Tiny next to the GEMMs (1000 classes per image), and latency-bound at small batches.
#include "prelude.h"

#ifndef BLOCK_SIZE
#define BLOCK_SIZE 256  // 8 warps: 4 elements per thread for 1000 classes, and a short 8-step tree
#endif
#if BLOCK_SIZE < 1 || (BLOCK_SIZE & (BLOCK_SIZE - 1)) != 0
#error "softmax.cu: BLOCK_SIZE must be a power of two (the tree reduction halves it)"
#endif

KERNEL void softmax_kernel1(GLOBAL float* __restrict__ prob, GLOBAL float* __restrict__ logits,
                            const GLOBAL float* __restrict__ bias, int rows, int classes)
{
    __shared__ float partial[BLOCK_SIZE];
    const int tid = (int)threadIdx.x;
    const int row = (int)blockIdx.x;
    GLOBAL float* z = logits + row * classes;
    GLOBAL float* p = prob + row * classes;

    // 1. z = logits + bias, and the row maximum.
    float localMax = -INFINITY;
    for (int k = tid; k < classes; k += BLOCK_SIZE) {
        const float v = z[k] + bias[k];
        z[k] = v;
        localMax = fmaxf(localMax, v);
    }
    partial[tid] = localMax;
    __syncthreads();
    for (int width = BLOCK_SIZE / 2; width > 0; width /= 2) {
        if (tid < width) partial[tid] = fmaxf(partial[tid], partial[tid + width]);
        __syncthreads();
    }
    const float rowMax = partial[0];
    __syncthreads();  // everyone has read partial[0] before it is reused below

    // 2. The exponentials and their sum.
    float localSum = 0.0f;
    for (int k = tid; k < classes; k += BLOCK_SIZE) {
        const float e = expf(z[k] - rowMax);
        p[k] = e;
        localSum += e;
    }
    partial[tid] = localSum;
    __syncthreads();
    for (int width = BLOCK_SIZE / 2; width > 0; width /= 2) {
        if (tid < width) partial[tid] += partial[tid + width];
        __syncthreads();
    }
    const float sum = partial[0];

    // 3. Normalise.
    for (int k = tid; k < classes; k += BLOCK_SIZE)
        p[k] = p[k] / sum;
}
