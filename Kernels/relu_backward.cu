// relu_backward.cu: the gradient of ReLU, in place, from the ReLU's output.
//
//   grad   is (count), any layout: the gradient of the ReLU's output on the way in, of its input on the way out
//   output is (count): the ReLU's output y = max(x, 0) (or what a later in-place op left of it, see below)
//   grad[i] = output[i] > 0 ? grad[i] : 0
//
// y > 0 exactly where x > 0, so the forward pass's output serves and x need not be kept. At x = 0 the
// gradient is taken as 0 (the subgradient TensorFlow's ReluGrad and PyTorch's threshold_backward use). An
// output of NaN (the forward's ReLU keeps NaN) gives 0: NaN > 0 is false. A NaN in grad where output > 0
// stays NaN. A selection, no arithmetic: the result is exact.
//
// After fc6/fc7's fused bias, ReLU and dropout the stored output is relu(x + b) * mask / keepProb: positive
// exactly where the ReLU passed the element and dropout kept it; dropout_backward.cu has already zeroed
// the other gradients, so that output serves here too.
//
// A grid-stride loop: thread t takes elements t, t + G, t + 2G, ... with G the grid's thread count, so
// consecutive threads touch consecutive elements (coalesced) and the host caps the grid (a few waves of a
// GPU; few enough work-groups that PoCL's cost per work-group does not count on a CPU). The index is
// unsigned: count <= 2^31 - 1 plus G <= 2^31 cannot wrap.
// Launch: 1-D blocks of any size (the host uses 256), grid min(ceil(count / block), the host's cap).
// Cost per element: 8 bytes read + 4 bytes written, 1 comparison: memory-bound.
#include "prelude.h"

KERNEL void relu_backward_kernel1(GLOBAL float* __restrict__ grad, const GLOBAL act_t* __restrict__ output, int count)
{
    const uint stride = gridDim.x * blockDim.x;
    for (uint i = blockIdx.x * blockDim.x + threadIdx.x; i < (uint)count; i += stride) {
        if (!(LOAD_ACT(output, i) > 0.0f)) grad[i] = 0.0f;
    }
}
