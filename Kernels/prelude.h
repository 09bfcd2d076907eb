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
//   - no templates, warp shuffles, half arithmetic or float atomics; __restrict__, not restrict.
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
// OpenCL C's name for a 64-bit unsigned integer (Philox's 32x32->64-bit products, 64-bit indices).
typedef unsigned long long ulong;
#ifndef FLT_MAX
#define FLT_MAX 3.402823466e+38f
#endif
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

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

// Ceiling division for grid sizes computed on the device side.
#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))

#endif // ALEXNET_PRELUDE_H
