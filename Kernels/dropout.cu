// dropout.cu: inverted dropout in place, with a counter-based random number generator.
//
//   x is (count), any layout: each element is kept with probability keepProb and scaled by
//   1/keepProb, or set to 0 (TensorFlow's tf.nn.dropout semantics).
//
// The random numbers: element i has the global index e = offset + i. Philox-4x32-10 (Salmon et al.,
// "Parallel random numbers: as easy as 1, 2, 3", SC 2011) turns the counter (floor(e/4) low 32 bits,
// floor(e/4) high 32 bits, 0, 0) and the key (seedLo, seedHi) into four 32-bit words; element e uses
// word e mod 4, and u(e) = (word >> 8) * 2^-24 is a uniform in [0, 1) with 24 random bits, exact in a
// float. The element is kept when u(e) < keepProb. So the mask is a pure function of (seed, e): the
// same on CUDA and OpenCL (integer arithmetic and one exact conversion), whatever the launch geometry,
// and a tensor processed in pieces (offset = index of the piece's first element) gets the same mask as
// in one piece. Give separate tensors or steps offsets (or seeds) whose ranges do not overlap.
// The generator and the mask's definition live in philox.h, which dropout_backward.cu includes too, so
// the backward pass zeroes exactly the gradients of the elements this kernel dropped.
//
// One thread per Philox output block: thread t takes block b = floor(offset/4) + t, i.e. the up to
// four consecutive elements with e in [4b, 4b + 3]. A warp thus covers 128 consecutive floats; each of
// the four load/store instructions is strided by 4, and together they use every byte of the cache
// lines they touch. One Philox call (10 rounds of two 32x32->64-bit products) serves four elements.
//
// Fused bias and ReLU: when `features` is not 0, x is a fully connected layer's raw GEMM output [N][features]
// and each element is first bias_relu_value(x[i], bias[i mod features]) (prelude.h), so fc6/fc7 in training
// take one pass instead of bias_relu.cu's then this one; the same numbers as the two in turn. `bias` is not
// read when `features` is 0. (One division per element: a few thousand elements per image.)
//
// Launch: 1-D blocks of any size (the host uses 256), grid ceil(blocks / block) with
// blocks = floor((offset + count - 1)/4) - floor(offset/4) + 1.
// Cost per element: 4 bytes read + 4 bytes written, 1 FLOP, and a quarter of a Philox call (about
// 25 integer operations): memory-bound on a GPU.
#include "philox.h"

KERNEL void dropout_kernel1(GLOBAL act_t* __restrict__ x, const GLOBAL float* __restrict__ bias, int features,
                            int count, float keepProb, uint seedLo, uint seedHi, uint offset)
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
        const float u = dropout_uniform(words[w]);
        const float x_i = LOAD_ACT(x, i);
        const float v = features != 0 ? bias_relu_value(x_i, bias[i % features]) : x_i;
        STORE_ACT(x, i, u < keepProb ? v * scale : 0.0f);
    }
}
