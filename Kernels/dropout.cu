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
#include "prelude.h"

// Philox-4x32-10 constants (Random123): the round multipliers and the key schedule's increments
// (the golden ratio and sqrt(3) - 1, as 32-bit fractions).
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

typedef struct { uint x0, x1, x2, x3; } Philox4;

// Ten rounds of Philox-4x32 on counter c with key (k0, k1). A round multiplies two counter words by the
// constants, and mixes the 64-bit products' halves with the other two words and the key; the key is
// bumped between rounds.
DEVICE Philox4 philox4x32_10(Philox4 c, uint k0, uint k1)
{
#pragma unroll
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        const ulong p0 = (ulong)PHILOX_M0 * (ulong)c.x0;
        const ulong p1 = (ulong)PHILOX_M1 * (ulong)c.x2;
        Philox4 next;
        next.x0 = (uint)(p1 >> 32) ^ c.x1 ^ k0;
        next.x1 = (uint)p1;
        next.x2 = (uint)(p0 >> 32) ^ c.x3 ^ k1;
        next.x3 = (uint)p0;
        c = next;
    }
    return c;
}

KERNEL void dropout_kernel1(GLOBAL act_t* __restrict__ x, const GLOBAL float* __restrict__ bias, int features,
                            int count, float keepProb, uint seedLo, uint seedHi, uint offset)
{
    const ulong block = (ulong)(offset >> 2) + (ulong)(blockIdx.x * blockDim.x + threadIdx.x);
    Philox4 counter;
    counter.x0 = (uint)block;
    counter.x1 = (uint)(block >> 32);
    counter.x2 = 0u;
    counter.x3 = 0u;
    const Philox4 r = philox4x32_10(counter, seedLo, seedHi);
    const uint words[4] = { r.x0, r.x1, r.x2, r.x3 };

    const float scale = 1.0f / keepProb;
#pragma unroll
    for (int w = 0; w < 4; w++) {
        const ulong e = block * 4u + (ulong)w;  // global index of this word's element
        if (e < (ulong)offset || e - (ulong)offset >= (ulong)count) continue;
        const int i = (int)(e - (ulong)offset);
        const float u = (float)(words[w] >> 8) * (1.0f / 16777216.0f);  // 2^-24
        const float x_i = LOAD_ACT(x, i);
        const float v = features != 0 ? bias_relu_value(x_i, bias[i % features]) : x_i;
        STORE_ACT(x, i, u < keepProb ? v * scale : 0.0f);
    }
}
