// softmax_xent_backward.cu: softmax cross-entropy's loss and its gradient with respect to the logits.
//
//   logits     is (rows, classes): logits[r][k], fc8's output with its bias ([N][F], image-major)
//   labels     is (rows): int, the true class of each row, in [0, classes)
//   loss       is (rows): loss[r] = -log softmax(logits[r])[labels[r]] = log sum_k exp(z_k - m) + (m - z_label),
//              with z = logits[r] and m = max_k z_k (the max-subtracted log-sum-exp: nothing overflows)
//   gradLogits is (rows, classes): gradLogits[r][k] = scale * (softmax(z)[k] - (k == labels[r] ? 1 : 0)),
//              the gradient of scale * sum_r loss[r] (scale = 1/rows for the batch mean)
//
// In place: gradLogits may be the logits buffer itself (the caller then keeps no copy of the logits). Each
// thread reads only the elements it later overwrites, and reads each before writing it; the label's logit
// is read, in pass 1, by the thread that owns it, which also writes the loss. So gradLogits and logits are
// not declared __restrict__.
// A label outside [0, classes) would index out of bounds: such a row gets loss NaN and a zero gradient
// (it contributes nothing to the step, and the NaN shows in any reduction of the loss). The test is made
// by every thread of the row's block, so all of them still pass the same barriers.
// A NaN among a row's logits makes its loss and its whole gradient NaN (through the sum).
//
// One block per row, three passes over the row with a block-stride loop (consecutive threads take
// consecutive classes: coalesced) and a shared-memory tree reduction after the first two, as softmax.cu:
//   1. the row maximum m (and the label's logit);
//   2. e_k = exp(z_k - m), stored in gradLogits; their sum s;
//   3. gradLogits = scale * (e_k / s - onehot); loss = log s + (m - z_label).
// Each thread re-reads only the elements it wrote itself, so passes 2 and 3 need no barrier of their own.
// Error: softmax's, then one subtraction and one product; log adds a few ulp of log s (see BackwardChecks).
//
// Launch: block (BLOCK_SIZE), grid (rows). Any number of classes >= 1.
// Cost per element: 4 bytes read (pass 1), 4 read + 4 written (pass 2), 4 read + 4 written (pass 3, mostly
// from cache); about 12 FLOPs with the exp. Tiny next to the GEMMs (1000 classes per image).
#include "prelude.h"

#ifndef BLOCK_SIZE
#define BLOCK_SIZE 256  // 8 warps: 4 elements per thread for 1000 classes, and a short 8-step tree
#endif
#if BLOCK_SIZE < 1 || (BLOCK_SIZE & (BLOCK_SIZE - 1)) != 0
#error "softmax_xent_backward.cu: BLOCK_SIZE must be a power of two (the tree reduction halves it)"
#endif

KERNEL void softmax_xent_backward_kernel1(GLOBAL float* gradLogits, GLOBAL float* __restrict__ loss,
                                          const GLOBAL float* logits, const GLOBAL int* __restrict__ labels,
                                          int rows, int classes, float scale)
{
    __shared__ float partial[BLOCK_SIZE];
    const int tid = (int)threadIdx.x;
    const int row = (int)blockIdx.x;
    const GLOBAL float* z = logits + row * classes;
    GLOBAL float* g = gradLogits + row * classes;
    const int label = labels[row];
    const int valid = label >= 0 && label < classes;

    // 1. The row maximum; the thread that owns the label's element keeps its logit.
    float localMax = -INFINITY;
    float zLabel = 0.0f;
    for (int k = tid; k < classes; k += BLOCK_SIZE) {
        const float v = z[k];
        localMax = fmaxf(localMax, v);
        if (k == label) zLabel = v;
    }
    partial[tid] = localMax;
    __syncthreads();
    for (int width = BLOCK_SIZE / 2; width > 0; width /= 2) {
        if (tid < width) partial[tid] = fmaxf(partial[tid], partial[tid + width]);
        __syncthreads();
    }
    const float rowMax = partial[0];
    __syncthreads();  // everyone has read partial[0] before it is reused below

    // 2. The exponentials, kept in the gradient's place (in place: over this thread's own logits, read
    // just before), and their sum.
    float localSum = 0.0f;
    for (int k = tid; k < classes; k += BLOCK_SIZE) {
        const float e = expf(z[k] - rowMax);
        g[k] = e;
        localSum += e;
    }
    partial[tid] = localSum;
    __syncthreads();
    for (int width = BLOCK_SIZE / 2; width > 0; width /= 2) {
        if (tid < width) partial[tid] += partial[tid + width];
        __syncthreads();
    }
    const float sum = partial[0];

    // 3. The gradient and the loss.
    for (int k = tid; k < classes; k += BLOCK_SIZE)
        g[k] = valid ? scale * (g[k] / sum - (k == label ? 1.0f : 0.0f)) : 0.0f;
    if (valid) {
        if (tid == label % BLOCK_SIZE) loss[row] = logf(sum) + (rowMax - zLabel);
    } else if (tid == 0) {
        loss[row] = UINT_AS_FLOAT(0x7fc00000u);  // a quiet NaN
    }
}
