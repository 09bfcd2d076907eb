// sgd.cu: one step of stochastic gradient descent with momentum and L2 weight decay, in place.
//
//   weights, velocity, grad are (count), any layout (one parameter tensor, or several laid end to end):
//   g           = grad[i] + weightDecay * weights[i]       (the L2 term folded into the gradient)
//   velocity[i] = momentum * velocity[i] + g
//   weights[i]  = weights[i] - learningRate * velocity[i]
//
// TensorFlow's MomentumOptimizer (use_nesterov false: accum = accum * momentum + grad; var -= lr * accum)
// applied to loss + weightDecay/2 * |w|^2, whose gradient is grad + weightDecay * w. The velocity starts
// at 0 (the caller zeroes it once). Each line is one multiply-add: NVRTC contracts them into fused
// multiply-adds, an OpenCL compiler may or may not, so the backends can differ in the last bit; the checks
// compare with the float rounding bound of the three operations instead of bit for bit.
//
// A grid-stride loop, as relu_backward.cu: thread t takes elements t, t + G, ... (coalesced), with the grid
// capped by the host; the unsigned index cannot wrap for count <= 2^31 - 1.
// Launch: 1-D blocks of any size (the host uses 256), grid min(ceil(count / block), the host's cap).
// Cost per element: 12 bytes read + 8 bytes written, 6 FLOPs: memory-bound (fc6's 37.7 M weights move
// 755 MB per step).
//
// sgd_momentum_kernel2, the CPU variant (PoCL): work-item r takes the contiguous run
// [r*segment, min((r+1)*segment, count)), the same arithmetic element by element, so both give the same bits
// on one compiler. On PoCL the grid-stride kernel ran fc6's step at about 18 M elements/s (each work-item
// strides 4 MB between its elements); runs of 4096 let the loop stream through memory.
// Launch: 1-D work-groups of any size (the host uses 16), grid ceil(ceil(count / segment) / group).
#include "prelude.h"

KERNEL void sgd_momentum_kernel1(GLOBAL float* __restrict__ weights, GLOBAL float* __restrict__ velocity,
                                 const GLOBAL float* __restrict__ grad, int count, float learningRate,
                                 float momentum, float weightDecay)
{
    const uint stride = gridDim.x * blockDim.x;
    for (uint i = blockIdx.x * blockDim.x + threadIdx.x; i < (uint)count; i += stride) {
        const float w = weights[i];
        const float g = grad[i] + weightDecay * w;
        const float v = momentum * velocity[i] + g;
        velocity[i] = v;
        weights[i] = w - learningRate * v;
    }
}

KERNEL void sgd_momentum_kernel2(GLOBAL float* __restrict__ weights, GLOBAL float* __restrict__ velocity,
                                 const GLOBAL float* __restrict__ grad, int count, float learningRate,
                                 float momentum, float weightDecay, int segment)
{
    const int run = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (run >= (count + segment - 1) / segment) return;
    const int begin = run * segment;
    const int end = count - begin < segment ? count : begin + segment;
    for (int i = begin; i < end; i++) {
        const float w = weights[i];
        const float g = grad[i] + weightDecay * w;
        const float v = momentum * velocity[i] + g;
        velocity[i] = v;
        weights[i] = w - learningRate * v;
    }
}
