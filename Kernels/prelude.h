// prelude.h: the portability layer every kernel file includes first.
//
// Kernels are written once, in CUDA C. NVRTC compiles them as they are for NVIDIA GPUs; OpenCL C
// (PoCL on the CPU in the tests) compiles the same text through the mappings below. Keep this file
// small: a kernel that needs something not mapped here either gets a portable spelling or a CUDA-only
// fast path inside `#if defined(__CUDACC__)` beside a portable one, never instead of it.
//
// Rules the kernels follow (each learned the hard way, see docs/platform.md):
//   - every pointer to global memory is declared GLOBAL (PoCL has no generic address space), and
//     pointers to shared memory passed to helpers are SHARED_PTR;
//   - helpers are DEVICE functions (a plain inline function is host code to NVRTC);
//   - shared memory is a fixed-size __shared__ array at kernel scope, sized by a -D tunable
//     (OpenCL has no `extern __shared__`, and __local arrays only at kernel scope);
//   - no templates, warp shuffles, half arithmetic or float atomics; __restrict__, not restrict;
//   - activations are act_t, read with LOAD_ACT and written with STORE_ACT (below), never indexed directly.
#ifndef ALEXNET_PRELUDE_H
#define ALEXNET_PRELUDE_H

#if defined(__CUDACC__)

#define KERNEL extern "C" __global__
#define DEVICE __device__ __forceinline__
#define GLOBAL
#define SHARED_PTR
#define BACKEND_CUDA 1
// NVRTC has no standard headers.
typedef unsigned int uint;
typedef unsigned short ushort;
// OpenCL C's name for a 64-bit unsigned integer (Philox's 32x32->64-bit products, 64-bit indices).
typedef unsigned long long ulong;
#ifndef FLT_MAX
#define FLT_MAX 3.402823466e+38f
#endif
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
// A float's bits and back (16-bit storage below).
#define FLOAT_AS_UINT(f) __float_as_uint(f)
#define UINT_AS_FLOAT(u) __uint_as_float(u)

#elif defined(__OPENCL_VERSION__)

#define KERNEL __kernel
#define DEVICE static inline
#define GLOBAL __global
#define SHARED_PTR __local
#define BACKEND_OPENCL 1
#define __shared__ __local
#define __syncthreads() barrier(CLK_LOCAL_MEM_FENCE)
// CUDA's launch geometry; a CUDA grid of G blocks of B threads is an OpenCL global size G*B, local size B.
#define threadIdx ((uint3)(get_local_id(0), get_local_id(1), get_local_id(2)))
#define blockIdx ((uint3)(get_group_id(0), get_group_id(1), get_group_id(2)))
#define blockDim ((uint3)(get_local_size(0), get_local_size(1), get_local_size(2)))
#define gridDim ((uint3)(get_num_groups(0), get_num_groups(1), get_num_groups(2)))
// CUDA's float math names map onto OpenCL's overloads; the intrinsics onto the native_ forms.
#define expf exp
#define logf log
#define powf pow
#define sqrtf sqrt
#define rsqrtf rsqrt
#define fabsf fabs
#define floorf floor
#define ceilf ceil
#define tanhf tanh
#define fmaxf fmax
#define fminf fmin
#define __expf native_exp
#define __logf native_log
#define __powf native_powr
#define __fdividef native_divide
#define FLOAT_AS_UINT(f) as_uint(f)
#define UINT_AS_FLOAT(u) as_float(u)

#else
#error "prelude.h: compile with NVRTC (__CUDACC__) or an OpenCL C compiler (__OPENCL_VERSION__)"
#endif

// Dynamic shared memory, sized at launch (ComputeStream.Launch's sharedMemoryBytes). CUDA declares it as
// an `extern __shared__` array inside the kernel; OpenCL passes it as a trailing __local pointer argument.
// Write both, the parameter macro right after the last parameter (no comma before it):
//   KERNEL void k(GLOBAL float* x, int n DYNAMIC_SHARED_PARAM(float, cache)) { DYNAMIC_SHARED_DECL(float, cache) ... }
#if defined(__CUDACC__)
#define DYNAMIC_SHARED_PARAM(type, name)
#define DYNAMIC_SHARED_DECL(type, name) extern __shared__ type name[];
#else
#define DYNAMIC_SHARED_PARAM(type, name) , __local type* name
#define DYNAMIC_SHARED_DECL(type, name)
#endif

// A convolution's bias and ReLU, applied by the kernel that next reads its output instead of by a pass of
// their own (lrn.cu, im2col.cu and maxpool.cu take `input_bias` and `biased`): relu(x + bias), the one float
// addition and the comparison of bias_relu.cu, so the fused result is the unfused one to the last bit, and
// NaN stays NaN (NaN < 0 is false).
DEVICE float bias_relu_value(float x, float bias)
{
    const float v = x + bias;
    return v < 0.0f ? 0.0f : v;
}

// 16-bit storage: values kept in 16 bits (GLOBAL ushort buffers), all arithmetic in float. Kernels read
// with load_half/load_bf16 and write with store_half/store_bf16; nothing else touches the 16-bit bits.
//
// bf16 (bfloat16) is a float's top 16 bits. To bf16: round to nearest, ties to even, by integer
// arithmetic on the bits (so exact on every backend whatever its float rounding or denormal mode): add
// 0x7FFF plus the lowest kept bit, drop the low 16 bits; a finite value past the largest bf16 rounds to
// infinity, as IEEE rounding does. A NaN is kept a (quiet) NaN with its sign and top payload bits; the
// addition would otherwise carry some NaNs into infinity.
DEVICE float bf16_to_float(ushort h) { return UINT_AS_FLOAT(((uint)h) << 16); }

DEVICE ushort float_to_bf16(float f)
{
    const uint u = FLOAT_AS_UINT(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x0040u);
    return (ushort)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

DEVICE float load_bf16(const GLOBAL ushort* p, int i) { return bf16_to_float(p[i]); }

DEVICE void store_bf16(GLOBAL ushort* p, int i, float v) { p[i] = float_to_bf16(v); }

// fp16 (IEEE binary16): the hardware's own conversions. CUDA: the PTX instructions, cvt.rn.f16.f32 (round
// to nearest even, overflow to infinity, subnormals kept) and cvt.f32.f16 (exact), as inline assembly, so
// no header is needed (NVRTC has no standard include path). OpenCL: vload_half and vstore_half_rte, core
// since OpenCL 1.0 for half pointers even without cl_khr_fp16 (no half arithmetic is needed).
#if defined(__CUDACC__)
DEVICE float load_half(const GLOBAL ushort* p, int i)
{
    const ushort h = p[i];
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

DEVICE void store_half(GLOBAL ushort* p, int i, float v)
{
    ushort h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    p[i] = h;
}
#else
DEVICE float load_half(const GLOBAL ushort* p, int i) { return vload_half(i, (const GLOBAL half*)p); }

DEVICE void store_half(GLOBAL ushort* p, int i, float v) { vstore_half_rte(v, i, (GLOBAL half*)p); }
#endif

// The activations' storage, chosen per module at compile time (NetworkKernels passes the define): act_t is
// what a GLOBAL activation pointer points to, LOAD_ACT reads element i as a float and STORE_ACT writes a float
// to it, rounded once. Without a define, plain floats: the FP32 kernels are the 16-bit ones with identity
// loads and stores, so one text serves every precision and FP32 stays bit for bit what it was.
//   -DACT_HALF  fp16 bits in ushort (load_half/store_half)
//   -DACT_BF16  bf16 bits in ushort (load_bf16/store_bf16)
// ACT_FLOAT is 1 when activations are floats (kernels that use their output as a float accumulator test it).
#if defined(ACT_HALF) && defined(ACT_BF16)
#error "prelude.h: define at most one of ACT_HALF and ACT_BF16"
#elif defined(ACT_HALF)
typedef ushort act_t;
#define ACT_FLOAT 0
#define LOAD_ACT(p, i) load_half((p), (i))
#define STORE_ACT(p, i, v) store_half((p), (i), (v))
#elif defined(ACT_BF16)
typedef ushort act_t;
#define ACT_FLOAT 0
#define LOAD_ACT(p, i) load_bf16((p), (i))
#define STORE_ACT(p, i, v) store_bf16((p), (i), (v))
#else
typedef float act_t;
#define ACT_FLOAT 1
#define LOAD_ACT(p, i) ((p)[i])
#define STORE_ACT(p, i, v) ((p)[i] = (v))
#endif

// Ceiling division for grid sizes computed on the device side.
#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))

#endif // ALEXNET_PRELUDE_H
