// lrn_backward.cu: the gradient of lrn.cu's local response normalisation with respect to its input.
//
//   in, grad_out, grad_in are (C, S): [c][s], S = N*H*W (the [C][N][H][W] activations with the batch inside)
//   forward (lrn.cu):  base[c] = bias + alpha * sum of in[c']^2 for c' in W(c) = [c - radius, c + radius]
//                      intersected with [0, C)
//                      out[c]  = in[c] * base[c]^-beta
//   backward, the exact derivative (c runs over W(j): j is in W(c) exactly when c is in W(j)):
//     grad_in[j] = grad_out[j] * base[j]^-beta
//                  - 2*alpha*beta * sum over c in W(j) of grad_out[c] * base[c]^-beta * in[j] * in[c] / base[c]
//
// The forward's output is not read: base[c] is recomputed from the input (the window's squares summed from
// its first channel, as lrn.cu does), which out[c] / in[c] could not give where in[c] is 0, and the fused
// forward pass (lrn_maxpool_kernel1) never writes the normalised tensor anyway. base^-beta is lrn.cu's
// power: rsqrt(x) * sqrt(rsqrt(x)) for beta = 0.75, powf otherwise. The host requires bias > 0 and
// alpha >= 0, so every base is >= bias > 0 and the division is safe.
//
// Fused input activation: when `biased` is not 0 the forward's input was a convolution's raw GEMM output,
// read as bias_relu_value(in[c][s], input_bias[c]) (prelude.h), and so is every value read here. grad_in
// is then the gradient with respect to the activated value; the ReLU's own backward is not applied here.
// `input_bias` is not read when `biased` is 0 (any buffer will do).
//
// lrn_backward_kernel1, for every device: one thread per element (j, s); blockIdx.y is the channel j and
// consecutive threads take consecutive s, so every load of a window is coalesced across a warp, as is the
// store, and no thread divides an index.
// Launch: 1-D blocks of any size (the host uses 256), grid (ceil(S / block), C). The host guarantees C*S
// fits in an int and C <= 65535.
//
// Cost per element: 4 bytes written, and from DRAM 4 bytes of grad_out and 4 of the input (the other reads
// hit the cache: neighbouring channels are read by neighbouring blocks at the same time); from cache
// (2*radius + 1)^2 + 2*radius + 1 input reads and 2*radius + 1 grad_out reads; about
// (2*radius + 1) * (2*(2*radius + 1) + 10) FLOPs with 2*radius + 1 powers and divisions (for AlexNet's
// radius 2: 100 FLOPs, 5 powers, 5 divisions). Memory-bound on a GPU as long as the fast power replaces powf.
#include "prelude.h"

// The activated input value of element (c, s).
DEVICE float lrn_input(const GLOBAL act_t* __restrict__ in, const GLOBAL float* __restrict__ input_bias, int biased,
                       int inner, int c, int s)
{
    const float v = LOAD_ACT(in, c * inner + s);
    return biased != 0 ? bias_relu_value(v, input_bias[c]) : v;
}

// base[c] = bias + alpha * (sum of the window's squares), in lrn.cu's order.
DEVICE float lrn_base(const GLOBAL act_t* __restrict__ in, const GLOBAL float* __restrict__ input_bias, int biased,
                      int channels, int inner, int c, int s, int radius, float alpha, float bias)
{
    // The window [first, last], clipped to the channels; written so that a huge radius cannot overflow.
    const int first = c > radius ? c - radius : 0;
    const int last = channels - 1 - c > radius ? c + radius : channels - 1;
    float sqrSum = 0.0f;
    for (int cc = first; cc <= last; cc++) {
        const float v = lrn_input(in, input_bias, biased, inner, cc, s);
        sqrSum += v * v;
    }
    return bias + alpha * sqrSum;
}

// base^-beta, as lrn.cu computes it.
DEVICE float lrn_factor(float base, float beta)
{
    if (beta == 0.75f) {
        const float r = rsqrtf(base);  // base^-1/2
        return r * sqrtf(r);           // base^-1/2 * base^-1/4
    }
    return powf(base, -beta);
}

KERNEL void lrn_backward_kernel1(GLOBAL float* __restrict__ grad_in, const GLOBAL float* __restrict__ grad_out,
                                 const GLOBAL act_t* __restrict__ in, const GLOBAL float* __restrict__ input_bias, int biased,
                                 int channels, int inner, int radius, float alpha, float beta, float bias)
{
    const int s = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (s >= inner) return;
    const int j = (int)blockIdx.y;

    const int first = j > radius ? j - radius : 0;
    const int last = channels - 1 - j > radius ? j + radius : channels - 1;
    const float x = lrn_input(in, input_bias, biased, inner, j, s);
    float own = 0.0f;    // base[j]^-beta
    float cross = 0.0f;  // in[j] times the sum over c in W(j) of grad_out[c] * in[c] * base[c]^-beta / base[c]
    for (int c = first; c <= last; c++) {
        const float base = lrn_base(in, input_bias, biased, channels, inner, c, s, radius, alpha, bias);
        const float factor = lrn_factor(base, beta);
        if (c == j) own = factor;
        // in[j] * in[c] / base[c] first: both are in c's window, so that ratio is at most 1 / alpha in size, and
        // the product cannot underflow where grad * in[c] * base^-beta / base alone would (a tiny gradient
        // times a huge input gives a subnormal sum that in[j] only later brings back to normal range).
        cross += grad_out[c * inner + s] * factor * (x * lrn_input(in, input_bias, biased, inner, c, s) / base);
    }
    grad_in[j * inner + s] = grad_out[j * inner + s] * own - 2.0f * alpha * beta * cross;
}
