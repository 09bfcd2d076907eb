// dropout_backward.cu: the gradient of inverted dropout (dropout.cu), in place.
//
//   grad is (count), any layout: the gradient of dropout's output on the way in, of its input on the way out:
//   grad[i] = kept(offset + i) ? grad[i] * (1/keepProb) : 0
//
// kept(e) is dropout.cu's decision for global index e under the same seed: Philox-4x32-10 counter block
// floor(e/4), word e mod 4, u(e) = (word >> 8) * 2^-24 < keepProb, from philox.h, the one definition both
// kernels include. Given the (seed, offset) the forward pass used, the mask is the forward's element for
// element, so nothing of it has to be stored between the passes. The factor is the forward's float
// reciprocal 1/keepProb (y = x * that float), so the result is the derivative of the forward as computed,
// one float rounding of grad times it (TensorFlow's gradient of tf.nn.dropout multiplies by the same scale
// and mask). NaN in grad stays NaN where the element was kept and becomes 0 where it was dropped, as a
// multiplication by the mask would not (0 * NaN): a dropped element contributes nothing to the input.
//
// With fc6/fc7's fused bias, ReLU and dropout (dropout.cu's `features`), the forward's output y is also
// what relu_backward.cu needs: y > 0 exactly where the element was kept and the ReLU passed it.
//
// One thread per Philox output block, as dropout.cu: thread t takes block b = floor(offset/4) + t, the up
// to four consecutive elements with e in [4b, 4b + 3]; one Philox call serves four elements.
// Launch: 1-D blocks of any size (the host uses 256), grid ceil(blocks / block) with
// blocks = floor((offset + count - 1)/4) - floor(offset/4) + 1.
// Cost per element: 4 bytes read + 4 bytes written, 1 FLOP, and a quarter of a Philox call (about
// 25 integer operations): memory-bound on a GPU.
#include "philox.h"

KERNEL void dropout_backward_kernel1(GLOBAL float* __restrict__ grad, int count, float keepProb,
                                     uint seedLo, uint seedHi, uint offset)
{
    const ulong block = (ulong)(offset >> 2) + (ulong)(blockIdx.x * blockDim.x + threadIdx.x);
    const Philox4 r = dropout_philox_block(block, seedLo, seedHi);
    const uint words[4] = { r.x0, r.x1, r.x2, r.x3 };

    const float scale = 1.0f / keepProb;
#pragma unroll
    for (int w = 0; w < 4; w++) {
        const ulong e = block * 4u + (ulong)w;  // global index of this word's element
        if (e < (ulong)offset || e - (ulong)offset >= (ulong)count) continue;
        const int i = (int)(e - (ulong)offset);
        grad[i] = dropout_uniform(words[w]) < keepProb ? grad[i] * scale : 0.0f;
    }
}
