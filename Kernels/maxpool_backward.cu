// maxpool_backward.cu: the gradient of maxpool.cu's VALID max pooling with respect to its input.
//
//   in        is (C, N, H, W): in[c][n][h][w], the forward pass's input
//   grad_out  element (c, n, y, x) at grad_out[c*outStrideC + n*outStrideN + y*outW + x] (the forward's
//             output layout: [C][N][Ho][Wo], or pool5's [N][C*Ho*Wo] flatten as fc6's backward hands it back)
//   grad_in   is (C, N, H, W): grad_in[c][n][h][w] = sum of grad_out over the windows (y, x) whose maximum
//             the forward took from in[c][n][h][w]; 0 for an element no window picked
//
// Which element a window picked is maxpool.cu's rule, recomputed here from the input: the running maximum
// starts at the window's first element and is replaced, in window order (row by row), by a value that is
// greater or is NaN. So on ties the first of the equal values wins (-0 and +0 compare equal), and in a
// window holding NaN the last NaN wins: the gradient goes where the forward's value came from. The
// selection compares values only, no arithmetic: it cannot disagree with the forward's.
//
// Gather form: one thread per input element, which visits the windows that contain it, recomputes each
// one's pick and adds grad_out where the pick is itself (in (y, x) order). Every element is written exactly
// once and nothing is accumulated across threads: no atomics (float atomics are not portable, and their
// order would make the sums nondeterministic). The windows containing (h, w) are
// y in [ceil((h - size + 1) / stride), floor(h / stride)] intersected with [0, outH), likewise x.
//
// Fused input activation: when `biased` is not 0 the forward's input was a convolution's raw GEMM output
// read as bias_relu_value(in, input_bias[c]) (prelude.h; pool5 reads conv5 so), and the picks are
// recomputed from those values, as maxpool.cu compared them. grad_in is then the gradient with respect to
// the activated value; the ReLU's own backward is not applied here. `input_bias` is not read when `biased`
// is 0.
//
// maxpool_backward_kernel1, for every device: blockIdx.y is the channel c and the threads of a channel take
// its inputs in (n, h, w) order, so consecutive threads write consecutive floats and read neighbouring
// windows (cached). Two divisions per thread find (n, h, w).
// Launch: 1-D blocks of any size (the host uses 256), grid (ceil(N*H*W / block), C). The host checks that
// the windows fit, that C*N*H*W and grad_out's extent fit in an int, and that C <= 65535.
//
// Cost per input element: 4 bytes written; about ceil(size/stride)^2 windows of size^2 reads each (4 bytes,
// from cache: neighbouring threads read the same windows) plus one 4-byte grad_out read per window that
// picked it; size^2 comparisons per window, at most one addition. For 3x3 windows with stride 2: up to 4
// windows, 36 cached reads and 36 comparisons. From DRAM only the input, grad_in and grad_out, once each:
// about 8 + 4/stride^2 bytes per input element, memory-bound.
#include "prelude.h"

// The index i*size + j, in window order, of the element the forward's maximum came from (maxpool.cu's rule).
DEVICE int maxpool_pick(const GLOBAL act_t* __restrict__ window, int width, int size, int biased, float b)
{
    float m = biased != 0 ? bias_relu_value(LOAD_ACT(window, 0), b) : LOAD_ACT(window, 0);
    int pick = 0;
    for (int i = 0; i < size; i++) {
        for (int j = 0; j < size; j++) {
            float v = LOAD_ACT(window, i * width + j);
            if (biased != 0) v = bias_relu_value(v, b);
            if (v > m || v != v) {  // v != v: v is NaN
                m = v;
                pick = i * size + j;
            }
        }
    }
    return pick;
}

KERNEL void maxpool_backward_kernel1(GLOBAL float* __restrict__ grad_in, const GLOBAL float* __restrict__ grad_out,
                                     const GLOBAL act_t* __restrict__ in, const GLOBAL float* __restrict__ input_bias, int biased,
                                     int channels, int batch, int height, int width, int outH, int outW, int size, int stride,
                                     int outStrideC, int outStrideN)
{
    const int index = (int)(blockIdx.x * blockDim.x + threadIdx.x);  // (n*height + h)*width + w
    if (index >= batch * height * width) return;
    const int c = (int)blockIdx.y;
    const int row = index / width;  // n*height + h
    const int w = index - row * width;
    const int n = row / height;
    const int h = row - n * height;

    // The windows that contain (h, w): y*stride <= h < y*stride + size, clipped to the output.
    const int yFirst = h >= size ? (h - size) / stride + 1 : 0;
    const int yLast = h / stride < outH - 1 ? h / stride : outH - 1;
    const int xFirst = w >= size ? (w - size) / stride + 1 : 0;
    const int xLast = w / stride < outW - 1 ? w / stride : outW - 1;

    const GLOBAL act_t* plane = in + (c * batch + n) * height * width;
    const GLOBAL float* g = grad_out + c * outStrideC + n * outStrideN;
    const float b = biased != 0 ? input_bias[c] : 0.0f;
    float sum = 0.0f;
    for (int y = yFirst; y <= yLast; y++) {
        for (int x = xFirst; x <= xLast; x++) {
            const int pick = maxpool_pick(plane + y * stride * width + x * stride, width, size, biased, b);
            if (pick == (h - y * stride) * size + (w - x * stride)) sum += g[y * outW + x];
        }
    }
    grad_in[index + c * batch * height * width] = sum;
}
