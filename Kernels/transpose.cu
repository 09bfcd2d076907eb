// transpose.cu: batched matrix transpose through shared memory.
//
//   in  is (batch, rows, cols), row-major: in[b][r][c]
//   out is (batch, cols, rows), row-major: out[b][c][r] = in[b][r][c]
//
// Used for layout changes (NHWC <-> NCHW of an activation is a transpose of (H*W, C) per image;
// HWIO -> OIHW weights is one of (H*W*I, O)). A naive transpose makes either its reads or its writes
// strided; here each block loads a TILE_DIM x TILE_DIM tile with coalesced reads, and writes it back
// transposed with coalesced writes.
//
// Launch: block (TILE_DIM, BLOCK_ROWS, 1); grid (ceil(cols/TILE_DIM), ceil(rows/TILE_DIM), batch).
// Cost per element: 4 bytes read + 4 bytes written, 0 FLOPs: memory-bound, judge it in GB/s
// (bytes moved = 8 * batch * rows * cols).
#include "prelude.h"

#ifndef TILE_DIM
#define TILE_DIM 32   // one warp's width: a tile row is one 128-byte transaction
#endif
#ifndef BLOCK_ROWS
#define BLOCK_ROWS 8  // 32 x 8 = 256 threads; each thread moves TILE_DIM / BLOCK_ROWS = 4 elements
#endif

KERNEL void transpose_kernel1(GLOBAL float* __restrict__ out, const GLOBAL float* __restrict__ in,
                              int rows, int cols)
{
    // One padding column: the column-wise reads below then hit 32 different banks instead of one.
    __shared__ float tile[TILE_DIM][TILE_DIM + 1];

    const size_t plane = (size_t)rows * (size_t)cols;
    const GLOBAL float* src = in + (size_t)blockIdx.z * plane;
    GLOBAL float* dst = out + (size_t)blockIdx.z * plane;

    const int tx = (int)threadIdx.x;
    const int ty = (int)threadIdx.y;

    // Read the tile: consecutive threads read consecutive columns of one input row.
    int col = (int)blockIdx.x * TILE_DIM + tx;
    int row0 = (int)blockIdx.y * TILE_DIM + ty;
    for (int j = 0; j < TILE_DIM; j += BLOCK_ROWS) {
        int row = row0 + j;
        if (col < cols && row < rows) tile[ty + j][tx] = src[(size_t)row * (size_t)cols + (size_t)col];
    }
    __syncthreads();

    // Write it transposed: consecutive threads write consecutive columns of one output row,
    // which are consecutive rows of the input tile.
    int outCol = (int)blockIdx.y * TILE_DIM + tx;        // an input row
    int outRow0 = (int)blockIdx.x * TILE_DIM + ty;       // an input column
    for (int j = 0; j < TILE_DIM; j += BLOCK_ROWS) {
        int outRow = outRow0 + j;
        if (outCol < rows && outRow < cols) dst[(size_t)outRow * (size_t)rows + (size_t)outCol] = tile[tx][ty + j];
    }
}
