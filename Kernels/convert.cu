// convert.cu: float32 to and from 16-bit storage (fp16 or bf16), element by element.
//
//   float_to_half_kernel1:  out[i] = fp16 bits of in[i], rounded to nearest even (store_half, prelude.h)
//   half_to_float_kernel1:  out[i] = the float of fp16 bits in[i] (exact)
//   float_to_bf16_kernel1:  out[i] = bf16 bits of in[i], rounded to nearest even, NaN kept (store_bf16)
//   bf16_to_float_kernel1:  out[i] = the float of bf16 bits in[i] (exact: the bits shifted up by 16)
//
// What the 16-bit precisions convert once, at load (weights and biases) and at the edges of a pass (the
// input, the probabilities), and what the checks prove the prelude's 16-bit loads and stores with: every
// kernel that stores activations in 16 bits goes through the same four functions.
//
// Launch: 1-D blocks of any size (the host uses 256), grid ceil(count / block); one thread per element.
// The host guarantees count fits in an int.
// Cost per element: 4 + 2 bytes moved, no FLOPs beyond the conversion: memory-bound.
#include "prelude.h"

KERNEL void float_to_half_kernel1(GLOBAL ushort* __restrict__ out, const GLOBAL float* __restrict__ in, int count)
{
    const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < count) store_half(out, i, in[i]);
}

KERNEL void half_to_float_kernel1(GLOBAL float* __restrict__ out, const GLOBAL ushort* __restrict__ in, int count)
{
    const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < count) out[i] = load_half(in, i);
}

KERNEL void float_to_bf16_kernel1(GLOBAL ushort* __restrict__ out, const GLOBAL float* __restrict__ in, int count)
{
    const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < count) store_bf16(out, i, in[i]);
}

KERNEL void bf16_to_float_kernel1(GLOBAL float* __restrict__ out, const GLOBAL ushort* __restrict__ in, int count)
{
    const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < count) out[i] = load_bf16(in, i);
}
