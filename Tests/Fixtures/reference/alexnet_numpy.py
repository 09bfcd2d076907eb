#!/usr/bin/env python3
"""An independent implementation of the reference AlexNet (docs/model.md) in numpy, float64, NHWC, with
the weight file's own layouts (conv HWIO, fc (in, out), fc6 rows in NHWC flatten order): it shares no code
and no layout decision with the engine. It reads the same inputs as `alexnet features` (a weight file and
227x227 8-bit RGB PNGs), compares every layer the engine wrote (.npy for one layer, .npz for several) and
exits 1 when any layer differs by more than tol * max|reference| or the top-5 classes differ.

usage: alexnet_numpy.py --weights FILE --features OUT.npz|OUT.npy [--layers conv1,...] [--tol 1e-4]
                        [--lrn-radius R --lrn-alpha A --lrn-beta B --lrn-bias K] IMAGE.png...
Also: alexnet_numpy.py --make-inputs FOLDER  writes synthetic He-scaled weights (w.npz) and three PNGs.
"""
import argparse
import struct
import sys
import zlib

import numpy as np

LAYERS = ["conv1", "norm1", "pool1", "conv2", "norm2", "pool2", "conv3", "conv4", "conv5", "pool5",
          "fc6", "fc7", "fc8", "prob"]
SHAPES = {"conv1": (11, 11, 3, 96), "conv2": (5, 5, 48, 256), "conv3": (3, 3, 256, 384),
          "conv4": (3, 3, 192, 384), "conv5": (3, 3, 192, 256), "fc6": (9216, 4096),
          "fc7": (4096, 4096), "fc8": (4096, 1000)}
MEAN_BGR = np.array([104.0, 117.0, 124.0])


def read_png(path):
    """8-bit RGB or RGBA, non-interlaced PNG (what the tests write), all five filter types."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit(f"{path}: not a PNG")
    at, idat = 8, b""
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        at += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or color not in (2, 6) or interlace:
                raise SystemExit(f"{path}: only 8-bit RGB/RGBA non-interlaced PNGs are read here")
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.int32)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        out = line.copy() if kind == 0 else np.zeros(stride, np.int32)
        for x in range(stride if kind else 0):
            a = out[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            if kind == 0:
                p = 0
            elif kind == 1:
                p = a
            elif kind == 2:
                p = b
            elif kind == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out[x] = (line[x] + p) & 255
        rows[y] = out
        prev = out
    return rows.reshape(height, width, channels)[:, :, :3]


def write_png(path, rgb):
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(height))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def load_weights(path):
    if path.endswith(".npz"):
        z = np.load(path)
        return {k: (z[k + "_W"].astype(np.float64), z[k + "_b"].astype(np.float64)) for k in SHAPES}
    d = np.load(path, allow_pickle=True, encoding="bytes").item()
    d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}
    return {k: (np.asarray(d[k][0], np.float64), np.asarray(d[k][1], np.float64)) for k in SHAPES}


def conv(x, w, b, stride, pad, groups):
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw, cin, cout = w.shape
    outs = []
    for g in range(groups):
        xg = x[..., g * cin:(g + 1) * cin]
        wg = w[..., g * (cout // groups):(g + 1) * (cout // groups)]
        windows = np.lib.stride_tricks.sliding_window_view(xg, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
        outs.append(np.einsum("nyxcij,ijco->nyxo", windows, wg, optimize=True))
    return np.maximum(np.concatenate(outs, -1) + b, 0)


def lrn(x, radius, alpha, beta, bias):
    squares = x ** 2
    total = np.zeros_like(x)
    for c in range(x.shape[-1]):
        total[..., c] = squares[..., max(0, c - radius):c + radius + 1].sum(-1)
    return x / (bias + alpha * total) ** beta


def pool(x):
    return np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))[:, ::2, ::2].max(axis=(-1, -2))


def forward(weights, x, radius, alpha, beta, bias):
    out = {}
    out["conv1"] = conv(x, *weights["conv1"], 4, 0, 1)
    out["norm1"] = lrn(out["conv1"], radius, alpha, beta, bias)
    out["pool1"] = pool(out["norm1"])
    out["conv2"] = conv(out["pool1"], *weights["conv2"], 1, 2, 2)
    out["norm2"] = lrn(out["conv2"], radius, alpha, beta, bias)
    out["pool2"] = pool(out["norm2"])
    out["conv3"] = conv(out["pool2"], *weights["conv3"], 1, 1, 1)
    out["conv4"] = conv(out["conv3"], *weights["conv4"], 1, 1, 2)
    out["conv5"] = conv(out["conv4"], *weights["conv5"], 1, 1, 2)
    out["pool5"] = pool(out["conv5"])
    flat = out["pool5"].reshape(x.shape[0], -1)  # NHWC flatten, the order of the file's fc6 rows
    out["fc6"] = np.maximum(flat @ weights["fc6"][0] + weights["fc6"][1], 0)
    out["fc7"] = np.maximum(out["fc6"] @ weights["fc7"][0] + weights["fc7"][1], 0)
    out["fc8"] = out["fc7"] @ weights["fc8"][0] + weights["fc8"][1]
    e = np.exp(out["fc8"] - out["fc8"].max(1, keepdims=True))
    out["prob"] = e / e.sum(1, keepdims=True)
    # The export layout: [N, C, H, W] for spatial layers.
    return {k: (v.transpose(0, 3, 1, 2) if v.ndim == 4 else v) for k, v in out.items()}


def make_inputs(folder):
    rng = np.random.default_rng(20261128)
    arrays = {}
    for name, shape in SHAPES.items():
        fan_in = int(np.prod(shape[:-1]))
        arrays[name + "_W"] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        arrays[name + "_b"] = (rng.standard_normal(shape[-1]) * 0.05).astype(np.float32)
    np.savez(f"{folder}/w.npz", **arrays)
    for i in range(3):
        write_png(f"{folder}/image{i}.png", rng.integers(0, 256, (227, 227, 3), dtype=np.uint8))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--make-inputs")
    parser.add_argument("--weights")
    parser.add_argument("--features")
    parser.add_argument("--layers", default=",".join(LAYERS))
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--lrn-radius", type=int, default=2)
    parser.add_argument("--lrn-alpha", type=float, default=2e-05)
    parser.add_argument("--lrn-beta", type=float, default=0.75)
    parser.add_argument("--lrn-bias", type=float, default=1.0)
    parser.add_argument("images", nargs="*")
    a = parser.parse_args()
    if a.make_inputs:
        make_inputs(a.make_inputs)
        return 0
    x = np.stack([read_png(p)[:, :, ::-1].astype(np.float64) - MEAN_BGR for p in a.images])
    ref = forward(load_weights(a.weights), x, a.lrn_radius, a.lrn_alpha, a.lrn_beta, a.lrn_bias)
    layers = a.layers.split(",")
    if a.features.endswith(".npz"):
        got = np.load(a.features)
        got = {k: got[k] for k in layers}
    else:
        got = {layers[0]: np.load(a.features)}
    failed = 0
    for name in layers:
        g, r = got[name], ref[name]
        if g.shape != r.shape:
            print(f"FAIL {name}: shape {g.shape}, reference {r.shape}")
            failed += 1
            continue
        err, scale = float(np.abs(g - r).max()), float(np.abs(r).max())
        ok = err <= a.tol * scale
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {name} {list(g.shape)}: max |error| {err:.3g}, bound {a.tol:g} * max|ref| {scale:.4g} = {a.tol * scale:.3g}")
    if "prob" in got:
        same = all((np.argsort(-got["prob"][n])[:5] == np.argsort(-ref["prob"][n])[:5]).all() for n in range(x.shape[0]))
        failed += not same
        print(f"{'PASS' if same else 'FAIL'} top-5 classes of every image {'identical' if same else 'differ'}")
    print(f"layers: {len(layers) - failed if failed <= len(layers) else 0} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
