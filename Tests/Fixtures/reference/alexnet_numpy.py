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


def linear_taps(src, dst):
    """OpenCV's INTER_LINEAR source taps for one axis: destination centre (x + 0.5)*src/dst - 0.5, clamped
    to the image (edge pixels replicated), two taps, no antialiasing."""
    scale = src / dst
    f = (np.arange(dst) + 0.5) * scale - 0.5
    i0 = np.floor(f).astype(np.int64)
    w1 = f - i0
    w1[i0 < 0] = 0.0
    i0[i0 < 0] = 0
    high = i0 >= src - 1
    w1[high] = 0.0
    i0[high] = src - 1
    i1 = np.minimum(i0 + 1, src - 1)
    return i0, i1, w1


def resize_linear(img, width, height):
    """cv2.resize(img.astype(float32), (width, height)) with INTER_LINEAR, in float64."""
    y0, y1, wy = linear_taps(img.shape[0], height)
    x0, x1, wx = linear_taps(img.shape[1], width)
    rows = img[y0] * (1 - wy)[:, None, None] + img[y1] * wy[:, None, None]
    return rows[:, x0] * (1 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]


def preprocess(rgb, mode, crop_long):
    """The reference input: BGR float, resized (stretch to 227x227, or shorter side to 256 then the centre
    227x227), the mean subtracted."""
    img = rgb[:, :, ::-1].astype(np.float64)
    if mode == "stretch":
        img = resize_linear(img, 227, 227)
    else:
        h, w = img.shape[:2]
        nh, nw = (256, crop_long(w, h)) if h <= w else (crop_long(h, w), 256)
        img = resize_linear(img, nw, nh)
        top, left = (nh - 227) // 2, (nw - 227) // 2
        img = img[top:top + 227, left:left + 227]
    return img - MEAN_BGR


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


def crop_long_side(long, short):
    """The long side after the shorter is resized to 256: 256*long/short rounded down (integer arithmetic)."""
    return 256 * long // short


def compare_classify(a):
    import json
    records = [json.loads(line) for line in open(a.classify_json, encoding="utf-8") if line.strip()]
    weights = load_weights(a.weights)
    failed = 0
    for record in records:
        if "error" in record:
            print(f"SKIP {record['file']}: {record['error']}")
            continue
        x = preprocess(read_png(record["file"]), a.resize, crop_long_side)[None]
        prob = forward(weights, x, a.lrn_radius, a.lrn_alpha, a.lrn_beta, a.lrn_bias)["prob"][0]
        want = np.argsort(-prob, kind="stable")[:len(record["top"])]
        got = [t["index"] for t in record["top"]]
        err = max(abs(t["probability"] - prob[t["index"]]) for t in record["top"])
        ok = list(want) == got and err <= a.tol
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {record['file']}: top {got} (reference {list(want)}), max |error| {err:.3g}")
    print(f"images: {len(records) - failed} passed, {failed} failed")
    return 1 if failed else 0


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
    parser.add_argument("--classify-json", help="compare `alexnet classify --format json` output instead of features")
    parser.add_argument("--resize", default="stretch", choices=["stretch", "crop"])
    parser.add_argument("images", nargs="*")
    a = parser.parse_args()
    if a.make_inputs:
        make_inputs(a.make_inputs)
        return 0
    if a.classify_json:
        return compare_classify(a)
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
