// col2im.cu: folds a lowered gradient back onto the input, im2col.cu's adjoint (a convolution's input
// gradient, after the GEMM dcol = W^T * dY).
//
//   col     is (K, Q) row-major, im2col.cu's layout: K = C*kernelH*kernelW, Q = images*outH*outW,
//           row k = (ci*kernelH + i)*kernelW + j, column q = ((n - image0)*outH + y)*outW + x
//   grad_in is (C, N, H, W): grad_in[ci][n][h][w] for the images n of [image0, image0 + images) is
//           the sum of col[k][q] over the (i, j, y, x) with y*stride - pad + i = h and x*stride - pad + j = w,
//           0 where no window reaches (h, w) (stride larger than the window, or the bottom/right edge left
//           over by the window count); the other images' elements are not touched
//
// im2col copies in[ci][n][h][w] into every (k, q) that reads it; its adjoint sums those entries back. The
// zero padding has no input element behind it: its entries of col are simply not read.
//
// Gather form: one thread per element of grad_in, which walks the taps that reach it and sums them, i
// ascending then j ascending, into a register, and writes it once: no thread adds to another's output, so
// no float atomics (not portable, and their order would make the sums nondeterministic). A tap i reaches
// row h when (h + pad - i) is a multiple of the stride and y = (h + pad - i) / stride lies in [0, outH):
// i runs over one residue class mod stride, from the first i that keeps y <= outH - 1 to min(kernelH - 1,
// h + pad) (y >= 0); likewise j. So no thread tests a tap that does not reach it.
//
// col2im_kernel1, for every device: blockIdx.y is the input channel ci and consecutive threads take
// consecutive (m, h, w) of that channel, m = n - image0: they write consecutive floats, and for stride 1
// they read consecutive columns x of each row of col, coalesced. Divisions: two find (m, h, w), four more
// the first tap and its output row and column; none per tap.
// Launch: 1-D blocks of any size (the host uses 256), grid (ceil(images*H*W / block), C). The host
// guarantees C <= 65535 and that K*Q and C*N*H*W fit in an int.
//
// Cost per element of grad_in: 4 bytes written, ceil(kernelH/stride) * ceil(kernelW/stride) reads of col at
// most (25 for conv2's 5x5 at stride 1, 4 bytes each) and as many additions: each element of col is read
// exactly once over the whole grid, so DRAM traffic is col once plus grad_in once, memory-bound. The GEMM
// before it did 2*Cout/groups FLOPs per element of col.
#include "prelude.h"

KERNEL void col2im_kernel1(GLOBAL float* __restrict__ grad_in, const GLOBAL float* __restrict__ col,
                           int channels, int batch, int height, int width, int image0, int images,
                           int kernelH, int kernelW, int stride, int pad, int outH, int outW)
{
    const int plane = height * width;
    const int index = (int)(blockIdx.x * blockDim.x + threadIdx.x);  // (m*height + h)*width + w
    if (index >= images * plane) return;
    const int ci = (int)blockIdx.y;
    const int m = index / plane;
    const int p = index - m * plane;
    const int h = p / width;
    const int w = p - h * width;

    // The padded coordinates: tap i of output row y reads padded row y*stride + i.
    const int hp = h + pad;
    const int wp = w + pad;
    // The first tap of the residue class hp mod stride whose output row y = (hp - i)/stride is at most outH - 1.
    const int iLow = hp - (outH - 1) * stride;
    const int iFirst = iLow > 0 ? iLow : hp % stride;
    const int iEnd = kernelH < hp + 1 ? kernelH : hp + 1;  // i <= hp keeps y >= 0
    const int jLow = wp - (outW - 1) * stride;
    const int jFirst = jLow > 0 ? jLow : wp % stride;
    const int jEnd = kernelW < wp + 1 ? kernelW : wp + 1;

    const int columns = images * outH * outW;
    const GLOBAL float* image = col + m * outH * outW;
    float sum = 0.0f;
    // Each step of i (j) by the stride moves one output row (column) back: no division inside the loops.
    const int xFirst = (wp - jFirst) / stride;
    int y = (hp - iFirst) / stride;
    for (int i = iFirst; i < iEnd; i += stride, y--) {
        const GLOBAL float* row = image + (ci * kernelH + i) * kernelW * columns + y * outW;
        int x = xFirst;
        for (int j = jFirst; j < jEnd; j += stride, x--) sum += row[j * columns + x];
    }
    grad_in[((ci * batch + image0 + m) * height + h) * width + w] = sum;
}
