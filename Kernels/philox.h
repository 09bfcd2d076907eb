// philox.h: the counter-based random numbers of dropout, shared by the forward kernel (dropout.cu) and the
// backward one (dropout_backward.cu), so both draw the same mask from one definition.
//
// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) turns a 128-bit
// counter and a 64-bit key into four 32-bit words. Dropout's scheme: element e (a global index) lies in
// Philox block b = floor(e/4), whose counter is (b low 32 bits, b high 32 bits, 0, 0) under the key
// (seedLo, seedHi); element e uses word e mod 4, and u(e) = (word >> 8) * 2^-24 is a uniform in [0, 1) with
// 24 random bits, exact in a float. The element is kept when u(e) < keepProb. Integer arithmetic and one
// exact conversion: the same bits on every backend, whatever the launch geometry.
#ifndef ALEXNET_PHILOX_H
#define ALEXNET_PHILOX_H

#include "prelude.h"

// Philox-4x32-10 constants (Random123): the round multipliers and the key schedule's increments
// (the golden ratio and sqrt(3) - 1, as 32-bit fractions).
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

typedef struct { uint x0, x1, x2, x3; } Philox4;

// Ten rounds of Philox-4x32 on counter c with key (k0, k1). A round multiplies two counter words by the
// constants, and mixes the 64-bit products' halves with the other two words and the key; the key is
// bumped between rounds.
DEVICE Philox4 philox4x32_10(Philox4 c, uint k0, uint k1)
{
#pragma unroll
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        const ulong p0 = (ulong)PHILOX_M0 * (ulong)c.x0;
        const ulong p1 = (ulong)PHILOX_M1 * (ulong)c.x2;
        Philox4 next;
        next.x0 = (uint)(p1 >> 32) ^ c.x1 ^ k0;
        next.x1 = (uint)p1;
        next.x2 = (uint)(p0 >> 32) ^ c.x3 ^ k1;
        next.x3 = (uint)p0;
        c = next;
    }
    return c;
}

// The four words of dropout's Philox block `block` (elements 4*block .. 4*block + 3) under seed (seedLo, seedHi).
DEVICE Philox4 dropout_philox_block(ulong block, uint seedLo, uint seedHi)
{
    Philox4 counter;
    counter.x0 = (uint)block;
    counter.x1 = (uint)(block >> 32);
    counter.x2 = 0u;
    counter.x3 = 0u;
    return philox4x32_10(counter, seedLo, seedHi);
}

// The uniform in [0, 1) that one Philox word gives: its top 24 bits times 2^-24.
DEVICE float dropout_uniform(uint word) { return (float)(word >> 8) * (1.0f / 16777216.0f); }

#endif // ALEXNET_PHILOX_H
