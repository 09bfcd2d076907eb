// im2col.cu: unfolds convolution windows into the columns of a matrix, so a convolution is one GEMM.
//
//   in  is (C, N, H, W): in[ci][n][h][w], the engine's channel-major activations of the whole batch
//   col is (K, Q) row-major, K = C*kernelH*kernelW, Q = images*outH*outW:
//       row    k = (ci*kernelH + i)*kernelW + j     (one input channel and one tap of the filter)
//       column q = ((n - image0)*outH + y)*outW + x  (one output pixel of image n)
//       col[k][q] = in[ci][n][y*stride - pad + i][x*stride - pad + j], 0 outside the image (zero padding)
//
// Then out[Cout][Q] = W[Cout][K] * col[K][Q] is the convolution of images [image0, image0 + images),
// already in the [C][N][H][W] layout. Rows are ci-major, so the rows of a group of input channels
// (conv2/4/5 split theirs in two) are one contiguous block of rows.
//
// Two entry points, the same result; the host picks one per device (NetworkKernels.Target):
//
// im2col_kernel1, for GPUs: one thread per element of col.
// Launch: 1-D blocks of any size (the host uses 256); grid (ceil(outH*outW / block), K, images):
// blockIdx.y is the row and blockIdx.z the image, so the row's (ci, i, j) is the same for the whole
// block and each thread divides only once, to split its pixel p = y*outW + x. Consecutive threads take
// consecutive columns: writes are coalesced; reads are too for stride 1 (consecutive x read consecutive
// w), and for stride 4 (conv1) a warp's reads span 4 cache lines that the neighbouring taps j reuse.
// The last block of each image is partly idle (a 13x13 image fills 169 of 256 threads).
// The host guarantees K <= 65535 and images <= 65535 (the grid's limits) and that K*Q and C*N*H*W fit
// in an int.
//
// im2col_kernel2, for CPUs (PoCL): one work-item per (row k, image m), writing that image's outH*outW
// contiguous floats of row k. The row's (ci, i, j) and the range of x whose input column lies inside
// the image are worked out once per work-item, so the loop over x has no division and no bounds test:
// zeros before and after, a straight (stride 1) or strided copy between; LLVM vectorises the copy and
// the zero fills, the only loops PoCL's work-item loop wraps. On a GPU this would be slow (each thread
// walks its own row: uncoalesced), which is why kernel1 stays for CUDA.
// Launch: 1-D blocks of any size (the host uses 64, few enough that a work-group of conv1's 363 rows is
// not mostly idle); grid (ceil(K / block), images). A work-group then writes block*outH*outW floats
// (774 KB for conv1), so PoCL's per-work-group cost is paid a few hundred times per call instead of
// once per 256 elements. Same host guarantees as kernel1.
//
// Fused input activation: when `biased` is not 0 the input is the previous convolution's raw GEMM output
// (conv3's for conv4, conv4's for conv5) and each value copied is bias_relu_value(in, input_bias[ci])
// (prelude.h); the zero padding stays 0, as it is outside the activated image too. The same numbers as
// bias_relu.cu then this kernel, one pass over the activation fewer. `input_bias` is not read when
// `biased` is 0.
//
// Cost per element of col: 4 bytes written + at most 4 bytes read (each input value is read about
// kernelH*kernelW/stride^2 times, mostly from cache), 0 FLOPs: memory-bound. The GEMM that follows
// reads col once more; its 2*Cout FLOPs per element of col are what the unfolding buys.
#include "prelude.h"

KERNEL void im2col_kernel1(GLOBAL act_t* __restrict__ col, const GLOBAL act_t* __restrict__ in,
                           const GLOBAL float* __restrict__ input_bias, int biased, int channels, int batch, int height, int width,
                           int image0, int images, int kernelH, int kernelW, int stride, int pad,
                           int outH, int outW)
{
    const int plane = outH * outW;
    const int p = (int)(blockIdx.x * blockDim.x + threadIdx.x);  // y*outW + x
    if (p >= plane) return;

    // The row: input channel ci and filter tap (i, j); the same for every thread of the block.
    const int k = (int)blockIdx.y;
    const int j = k % kernelW;
    const int i = (k / kernelW) % kernelH;
    const int ci = k / (kernelW * kernelH);

    // The column q = (m*outH + y)*outW + x: output pixel (y, x) of image n = image0 + m.
    const int m = (int)blockIdx.z;
    const int y = p / outW;
    const int x = p - y * outW;

    const int iy = y * stride - pad + i;
    const int ix = x * stride - pad + j;
    float value = 0.0f;
    if (iy >= 0 && iy < height && ix >= 0 && ix < width) {
        value = LOAD_ACT(in, ((ci * batch + image0 + m) * height + iy) * width + ix);
        if (biased != 0) value = bias_relu_value(value, input_bias[ci]);
    }
    STORE_ACT(col, k * (images * plane) + m * plane + p, value);
}

KERNEL void im2col_kernel2(GLOBAL act_t* __restrict__ col, const GLOBAL act_t* __restrict__ in,
                           const GLOBAL float* __restrict__ input_bias, int biased, int channels, int batch, int height, int width,
                           int image0, int images, int kernelH, int kernelW, int stride, int pad,
                           int outH, int outW)
{
    const int k = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (k >= channels * kernelH * kernelW) return;
    const int m = (int)blockIdx.y;
    const int j = k % kernelW;
    const int i = (k / kernelW) % kernelH;
    const int ci = k / (kernelW * kernelH);
    const int plane = outH * outW;

    // Columns x with 0 <= x*stride - pad + j < width: [xBegin, xEnd), maybe empty.
    const int before = pad - j;  // x*stride >= before
    int xBegin = before > 0 ? (before + stride - 1) / stride : 0;
    if (xBegin > outW) xBegin = outW;
    const int last = width - 1 + pad - j;  // x*stride <= last
    int xEnd = last < 0 ? 0 : last / stride + 1;
    if (xEnd > outW) xEnd = outW;
    if (xEnd < xBegin) xEnd = xBegin;

    GLOBAL act_t* dst = col + k * (images * plane) + m * plane;
    const GLOBAL act_t* src = in + (ci * batch + image0 + m) * height * width;
    const float b = biased != 0 ? input_bias[ci] : 0.0f;
    for (int y = 0; y < outH; y++) {
        GLOBAL act_t* row = dst + y * outW;
        const int iy = y * stride - pad + i;
        if (iy < 0 || iy >= height) {
            for (int x = 0; x < outW; x++) STORE_ACT(row, x, 0.0f);
            continue;
        }
        for (int x = 0; x < xBegin; x++) STORE_ACT(row, x, 0.0f);
        // src[base + x*stride] for x >= xBegin is inside input row iy.
        const int base = iy * width - pad + j;
        if (biased != 0) {
            if (stride == 1) {
                for (int x = xBegin; x < xEnd; x++) STORE_ACT(row, x, bias_relu_value(LOAD_ACT(src, base + x), b));
            } else {
                for (int x = xBegin; x < xEnd; x++) STORE_ACT(row, x, bias_relu_value(LOAD_ACT(src, base + x * stride), b));
            }
        } else if (stride == 1) {
            for (int x = xBegin; x < xEnd; x++) STORE_ACT(row, x, LOAD_ACT(src, base + x));
        } else {
            for (int x = xBegin; x < xEnd; x++) STORE_ACT(row, x, LOAD_ACT(src, base + x * stride));
        }
        for (int x = xEnd; x < outW; x++) STORE_ACT(row, x, 0.0f);
    }
}
