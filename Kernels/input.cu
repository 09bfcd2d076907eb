// input.cu: the user's input batch (image-major, channels last) to the engine's channel-major layout.
//
//   in  is (N, P, C): in[n][p][c]   N images of P = 227*227 pixels of C = 3 channels (BGR, mean
//                                   already subtracted), exactly as the caller hands them over
//   out is (C, N, P): out[c][n][p]  the [C][N][H][W] layout every layer of the engine works in
//
// Per image this is a transpose of a P x C matrix with a tiny C. One thread per pixel (n, p): it reads
// the pixel's C consecutive values and writes each into its channel's plane. Since
// out[c][n][p] = out[c*N*P + (n*P + p)], the output index needs no division. Consecutive threads take
// consecutive pixels, so each write instruction of a warp stores 32 consecutive floats (coalesced), and
// the C read instructions of a warp together cover 32*C consecutive floats (each cache line is used in
// full across them). That suits C = 3; a large C would want transpose.cu's tiled transpose instead.
//
// Launch: 1-D blocks of any size (the host uses 256), grid ceil(N*P / block). The host guarantees
// N*P*C fits in an int.
//
// input_nhwc_to_cnhw2, for CPUs (PoCL): one work-item per run of `segment` consecutive pixels (of the
// whole batch, n*P + p), a loop over them per channel that LLVM vectorises (interleaved loads of the
// C = 3 values, contiguous stores), instead of one 256-item work-group per 256 pixels (6 400 of them at
// batch 32, each with PoCL's fixed cost). Uncoalesced on a GPU, hence CPU only.
// Launch: 1-D blocks of any size (the host uses 16), grid ceil(ceil(N*P / segment) / block).
// Cost per element: 4 bytes read + 4 bytes written, 0 FLOPs: memory-bound (bytes moved = 8*N*P*C).
#include "prelude.h"

KERNEL void input_nhwc_to_cnhw(GLOBAL act_t* __restrict__ out, const GLOBAL float* __restrict__ in,
                               int images, int pixels, int channels)
{
    const int total = images * pixels;                              // pixels of the whole batch
    const int pixel = (int)(blockIdx.x * blockDim.x + threadIdx.x);  // n*P + p
    if (pixel >= total) return;
    const GLOBAL float* src = in + pixel * channels;
    if (channels == 3) {
        // AlexNet's BGR input, spelled out: straight-line code the OpenCL compiler vectorises across
        // work-items (a loop inside each work-item stops it).
        STORE_ACT(out, pixel, src[0]);
        STORE_ACT(out, total + pixel, src[1]);
        STORE_ACT(out, 2 * total + pixel, src[2]);
    } else {
        for (int c = 0; c < channels; c++)
            STORE_ACT(out, c * total + pixel, src[c]);
    }
}

KERNEL void input_nhwc_to_cnhw2(GLOBAL act_t* __restrict__ out, const GLOBAL float* __restrict__ in,
                                int images, int pixels, int channels, int segment)
{
    const int total = images * pixels;
    const int run = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    const int begin = run * segment;
    if (begin >= total) return;
    const int end = total - begin < segment ? total : begin + segment;
    if (channels == 3) {
        // One pass, each pixel's three values read together.
        for (int pixel = begin; pixel < end; pixel++) {
            STORE_ACT(out, pixel, in[3 * pixel]);
            STORE_ACT(out, total + pixel, in[3 * pixel + 1]);
            STORE_ACT(out, 2 * total + pixel, in[3 * pixel + 2]);
        }
    } else {
        for (int c = 0; c < channels; c++)
            for (int pixel = begin; pixel < end; pixel++)
                STORE_ACT(out, c * total + pixel, in[pixel * channels + c]);
    }
}
