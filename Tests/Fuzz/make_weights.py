#!/usr/bin/python3
"""Write random AlexNet weights in bvlc_alexnet.npy's layout, for runs that need no real weights.

    make_weights.py OUT.npy [--seed S]

The file is a 0-d object array holding {layer: [W, b]} (np.save with allow_pickle), the layout the
engine reads: convolutions HWIO (kh, kw, cin/groups, cout), fully connected (in, out), float32.

Weights are He-scaled (std = sqrt(2 / fan_in)), so activations keep their scale through the ReLU
layers. The input is 0-255 minus the mean (std around 60), so conv1 is scaled down further: with
plain He scaling the logits come out in the tens and the softmax is saturated (one class at 1.0), which
would make an exact comparison of probabilities between two runs almost meaningless. Deterministic for
a given seed.
"""
import argparse
import sys

import numpy as np

# (name, weight shape); conv2, conv4 and conv5 are the two-group layers, hence their halved cin.
LAYERS = [
    ("conv1", (11, 11, 3, 96)),
    ("conv2", (5, 5, 48, 256)),
    ("conv3", (3, 3, 256, 384)),
    ("conv4", (3, 3, 192, 384)),
    ("conv5", (3, 3, 192, 256)),
    ("fc6", (9216, 4096)),
    ("fc7", (4096, 4096)),
    ("fc8", (4096, 1000)),
]

# Extra factors beyond He scaling: conv1 divides out the raw pixel scale; fc8 (no ReLU after it)
# keeps the logits around a few units, so many classes get visible probabilities.
EXTRA_SCALE = {"conv1": 1.0 / 64.0, "fc8": 0.5}


def make(seed):
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in LAYERS:
        fan_in = int(np.prod(shape[:-1]))
        std = np.sqrt(2.0 / fan_in) * EXTRA_SCALE.get(name, 1.0)
        w = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
        b = (rng.standard_normal(shape[-1], dtype=np.float32) * np.float32(0.01)).astype(np.float32)
        weights[name] = [w.astype(np.float32), b]
    return weights


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    weights = make(args.seed)
    # np.save appends .npy when missing; write through a file object so the name is kept as given.
    with open(args.out, "wb") as f:
        np.save(f, np.array(weights, dtype=object), allow_pickle=True)
    params = sum(w.size + b.size for w, b in weights.values())
    print(f"{args.out}: {params} parameters, seed {args.seed}", file=sys.stderr)


if __name__ == "__main__":
    main()
