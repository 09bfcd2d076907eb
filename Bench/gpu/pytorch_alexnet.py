#!/usr/bin/env python3
"""AlexNet in PyTorch on the GPU, the comparison peer of `alexnet bench`: the same network (docs/model.md),
the same weight file and the same images as the engine, timed the same way, its logits checked against the
engine's and against the float64 numpy implementation of the reference.

usage: pytorch_alexnet.py --weights w.npz [--engine-features features.npz] --out pytorch.json
                          [--batch 1,64,256] [--iterations 50] [--warmup 5] [--modes fp32,graph,...] IMAGE.png...

The weights come in the weight file's layouts (conv HWIO, fc (in, out), fc6's rows in pool5's NHWC flatten
order) and are turned into PyTorch's (OIHW, (out, in), fc6's columns in NCHW flatten order) once. The images
go through Tests/Fixtures/reference/alexnet_numpy.py's preprocessing and are tiled to each batch size (image
i of a batch is image i mod count). Each mode's logits (fc8) on those images are compared with the engine's
(`alexnet features --layer fc8,prob`) and with the numpy forward: max |difference| / max |other|, and how many
images have the same top-1 class.

Exit status: 0 when every FP32 mode's logits are within tolerance of both and agree on top-1 everywhere,
1 when an FP32 comparison fails (or an FP32 mode could not run), 2 when nothing could run (no PyTorch, no
CUDA device, bad arguments). TF32 and FP16 results are reported against their own, looser, tolerances
without changing the exit status.
"""
import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures", "reference",
                         "alexnet_numpy.py")
POOL5 = (6, 6, 256)  # H, W, C of pool5: fc6 reads these 9216 values
CONVS = {  # name: (stride, padding, groups), docs/model.md
    "conv1": (4, 0, 1), "conv2": (1, 2, 2), "conv3": (1, 1, 1), "conv4": (1, 1, 2), "conv5": (1, 1, 2)}
FCS = ["fc6", "fc7", "fc8"]

# Each mode: how it runs, and the bound on max |logits - other| / max |other|. FP32 modes round once per
# multiply-add like the engine (the engine's own checks use 1e-4 of the largest reference value); TF32 keeps
# 10 mantissa bits of each GEMM/convolution input and FP16 also stores activations in 11 bits, which over
# eight layers gives errors of order 1e-3 of the largest logit, so their bound is 1e-2.
MODES = {
    "fp32": {"description": "eager FP32, NCHW, TF32 off", "fp32": True, "tolerance": 1e-4},
    "graph": {"description": "CUDA graph of the eager FP32 pass (TF32 off), replayed", "fp32": True, "tolerance": 1e-4},
    "channels_last": {"description": "eager FP32, channels_last (NHWC) tensors, TF32 off", "fp32": True, "tolerance": 1e-4},
    "tf32": {"description": "eager FP32 tensors, NCHW, TF32 on for convolutions and GEMMs", "fp32": False, "tolerance": 1e-2},
    "fp16": {"description": "FP16 autocast (LRN in FP32, weights cast each pass), NCHW", "fp32": False, "tolerance": 1e-2},
    "bf16": {"description": "BF16 autocast (LRN in FP32, weights cast each pass), NCHW", "fp32": False, "tolerance": 3e-2},
    # Last: its first pass per batch size compiles (Inductor, Triton), which can take most of the step's time
    # limit, and it needs a working compiler toolchain offline; the modes before it are written by then.
    "compile": {"description": "torch.compile of the eager FP32 pass (TF32 off), default mode", "fp32": False, "tolerance": 1e-3},
}


def load_reference(path=REFERENCE):
    """alexnet_numpy.py as a module, from its path (it is a test fixture, not a package)."""
    spec = importlib.util.spec_from_file_location("alexnet_numpy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def torch_layouts(weights):
    """The weight file's arrays ({name: (W, b)}, docs/model.md) in PyTorch's layouts: conv HWIO -> OIHW;
    fc (in, out) -> (out, in); fc6's inputs reordered from pool5's NHWC flatten (row (h*6 + w)*256 + c) to
    NCHW's (column c*36 + h*6 + w), which is what torch.flatten gives for any memory format."""
    out = {}
    for name in CONVS:
        w, b = weights[name]
        out[name] = (np.ascontiguousarray(w.transpose(3, 2, 0, 1)), b)
    h, w_, c = POOL5
    w6, b6 = weights["fc6"]
    nchw_rows = w6.reshape(h, w_, c, -1).transpose(2, 0, 1, 3).reshape(h * w_ * c, -1)
    out["fc6"] = (np.ascontiguousarray(nchw_rows.T), b6)
    for name in FCS[1:]:
        w, b = weights[name]
        out[name] = (np.ascontiguousarray(w.T), b)
    return out


def check_layouts(weights, converted, seed=5):
    """The converted arrays compute what the originals do, on random data in float64: one output of each
    convolution at a corner (a dot product over the window, each layout indexed its own way), and fc6 over a
    random pool5 flattened NCHW (converted) and NHWC (original). Returns the problems found (empty when none)."""
    rng = np.random.default_rng(seed)
    problems = []
    for name in CONVS:
        w, _ = weights[name]
        kh, kw, cin, cout = w.shape
        patch = rng.standard_normal((kh, kw, cin))  # HWC window
        want = np.einsum("ijc,ijco->o", patch, w)
        got = np.einsum("cij,ocij->o", patch.transpose(2, 0, 1), converted[name][0])
        if not np.allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max()):
            problems.append(f"{name}: OIHW weights do not match the file's HWIO ones")
    pool5 = rng.standard_normal((2,) + (POOL5[2], POOL5[0], POOL5[1]))  # N, C, H, W
    want = pool5.transpose(0, 2, 3, 1).reshape(2, -1) @ weights["fc6"][0]
    got = pool5.reshape(2, -1) @ converted["fc6"][0].T
    if not np.allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max()):
        problems.append("fc6: the reordered weights do not read pool5 as the file's NHWC order does")
    return problems


def compare(logits, other):
    """max |logits - other|, that over max |other|, and how many rows share their top-1 class."""
    diff = float(np.abs(logits - other).max())
    scale = float(np.abs(other).max())
    agree = int((logits.argmax(1) == other.argmax(1)).sum())
    return {"max_abs_diff": diff, "relative": diff / scale if scale else float("inf"), "top1_agree": agree,
            "images": int(logits.shape[0])}


def within(result, tolerance):
    return result["relative"] <= tolerance and result["top1_agree"] == result["images"]


def parse_batches(text):
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise SystemExit(f"pytorch_alexnet.py: --batch takes positive whole numbers separated by commas (as 1,64,256), not '{text}'")
    return sizes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="the weight file (.npz as alexnet_numpy.py --make-inputs writes it, or .npy)")
    parser.add_argument("--engine-features", help="`alexnet features --layer fc8,prob` output (.npz) for the same images")
    parser.add_argument("--out", required=True, help="the JSON file to write")
    parser.add_argument("--batch", default="1,64,256")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--no-cudnn-benchmark", action="store_true", help="keep cuDNN's heuristic algorithm choice")
    parser.add_argument("--lrn-radius", type=int, default=2)
    parser.add_argument("--lrn-alpha", type=float, default=2e-05)
    parser.add_argument("--lrn-beta", type=float, default=0.75)
    parser.add_argument("--lrn-bias", type=float, default=1.0)
    parser.add_argument("images", nargs="+")
    a = parser.parse_args()
    batches = parse_batches(a.batch)
    modes = a.modes.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown or a.iterations < 1 or a.warmup < 0:
        print(f"pytorch_alexnet.py: unknown mode {unknown} (modes: {', '.join(MODES)})" if unknown
              else "pytorch_alexnet.py: --iterations must be at least 1 and --warmup at least 0", file=sys.stderr)
        return 2
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        print(f"pytorch_alexnet.py: PyTorch is not installed ({e}); nothing was compared", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print(f"pytorch_alexnet.py: PyTorch {torch.__version__} sees no CUDA device (torch.version.cuda {torch.version.cuda}); nothing was compared",
              file=sys.stderr)
        return 2

    ref = load_reference()
    started = time.time()
    weights = ref.load_weights(a.weights)
    converted = torch_layouts(weights)
    problems = check_layouts(weights, converted)
    if problems:
        for p in problems:
            print(f"pytorch_alexnet.py: {p}", file=sys.stderr)
        return 1
    images = np.stack([ref.preprocess(ref.read_png(p), "stretch", ref.crop_long_side) for p in a.images])  # N, H, W, C (BGR)
    count = images.shape[0]
    print(f"numpy float64 forward of {count} images ...", flush=True)
    numpy_logits = ref.forward(weights, images, a.lrn_radius, a.lrn_alpha, a.lrn_beta, a.lrn_bias)["fc8"]
    engine_logits = np.load(a.engine_features)["fc8"].astype(np.float64) if a.engine_features else None
    if engine_logits is not None and engine_logits.shape != numpy_logits.shape:
        print(f"pytorch_alexnet.py: {a.engine_features} holds fc8 of shape {engine_logits.shape}, not {numpy_logits.shape}: "
              "run `alexnet features --layer fc8,prob` on the same images", file=sys.stderr)
        return 2
    print(f"weights, images and numpy reference in {time.time() - started:.1f} s", flush=True)

    device = torch.device("cuda")
    t = {name: (torch.from_numpy(w.astype(np.float32)).to(device), torch.from_numpy(b.astype(np.float32)).to(device))
         for name, (w, b) in converted.items()}
    t_last = {name: (w.contiguous(memory_format=torch.channels_last) if w.dim() == 4 else w, b) for name, (w, b) in t.items()}
    x_all = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)).astype(np.float32)).to(device)
    size = 2 * a.lrn_radius + 1

    def lrn(x):
        # TensorFlow's LRN (docs/model.md) sums the squares over [c - radius, c + radius]; PyTorch's averages
        # them over a window of `size` channels (zero padded), so its alpha is TensorFlow's times size.
        # Computed in float32 in every mode: the squares of conv outputs overflow float16.
        return F.local_response_norm(x.float(), size, alpha=a.lrn_alpha * size, beta=a.lrn_beta, k=a.lrn_bias).to(x.dtype)

    def forward(p, x):
        for name, after in (("conv1", "lrn"), ("conv2", "lrn"), ("conv3", None), ("conv4", None), ("conv5", "pool")):
            stride, padding, groups = CONVS[name]
            x = F.relu(F.conv2d(x, p[name][0], p[name][1], stride=stride, padding=padding, groups=groups))
            if after == "lrn":
                x = F.max_pool2d(lrn(x), 3, 2)
            elif after == "pool":
                x = F.max_pool2d(x, 3, 2)
        x = torch.flatten(x, 1)  # NCHW order whatever the memory format; fc6's columns were reordered to it
        x = F.relu(F.linear(x, *p["fc6"]))
        x = F.relu(F.linear(x, *p["fc7"]))
        logits = F.linear(x, *p["fc8"])
        return logits, torch.softmax(logits.float(), 1)

    def set_tf32(on):
        # PyTorch 2.9 replaced allow_tf32 by fp32_precision and warns about (later refuses) mixing the two, so
        # one of them is used, whichever this PyTorch has. cuDNN's own default allows TF32: set both.
        if hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv"):
            torch.backends.cuda.matmul.fp32_precision = "tf32" if on else "ieee"
            torch.backends.cudnn.conv.fp32_precision = "tf32" if on else "ieee"
            return "fp32_precision"
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on
        return "allow_tf32"

    torch.backends.cudnn.benchmark = not a.no_cudnn_benchmark
    props = torch.cuda.get_device_properties(0)
    report = {
        "device": torch.cuda.get_device_name(0),
        "capability": f"{props.major}.{props.minor}",
        "memory_bytes": int(props.total_memory),
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": str(torch.backends.cudnn.version()),
                     "numpy": np.__version__, "python": platform.python_version()},
        "settings": {"weights": a.weights, "images": a.images, "warmup": a.warmup, "iterations": a.iterations,
                     "cudnn_benchmark": torch.backends.cudnn.benchmark,
                     "lrn": {"radius": a.lrn_radius, "alpha": a.lrn_alpha, "beta": a.lrn_beta, "bias": a.lrn_bias},
                     "timing": "CUDA events around each pass, after the warm-up; median and minimum of the timed passes"},
        "engine_vs_numpy": compare(engine_logits, numpy_logits) if engine_logits is not None else None,
        "modes": {},
        "failures": [],
        "complete": False,
    }

    def write():
        with open(a.out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")

    def measure(run):
        for _ in range(a.warmup):
            run()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(a.iterations):
            start.record()
            run()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times), min(times)

    compiled_forward = {}
    for mode in modes:
        spec = MODES[mode]
        entry = {"description": spec["description"], "tolerance": spec["tolerance"], "fp32": spec["fp32"], "results": []}
        report["modes"][mode] = entry
        entry["tf32_setting"] = set_tf32(mode == "tf32")
        params = t_last if mode == "channels_last" else t
        for batch in batches:
            result = {"batch": batch}
            entry["results"].append(result)
            graph = None
            try:
                with torch.inference_mode():
                    x = x_all[torch.arange(batch, device=device) % count].contiguous()
                    if mode == "channels_last":
                        x = x.contiguous(memory_format=torch.channels_last)
                    if mode in ("fp16", "bf16"):
                        def run(x=x, dtype=torch.float16 if mode == "fp16" else torch.bfloat16):
                            with torch.autocast("cuda", dtype=dtype):
                                return forward(params, x)
                    elif mode == "graph":
                        # Warm up on a side stream before capture, as CUDA graph capture requires.
                        side = torch.cuda.Stream()
                        side.wait_stream(torch.cuda.current_stream())
                        with torch.cuda.stream(side):
                            for _ in range(3):
                                forward(params, x)
                        torch.cuda.current_stream().wait_stream(side)
                        graph = torch.cuda.CUDAGraph()
                        with torch.cuda.graph(graph):
                            captured = forward(params, x)

                        def run(graph=graph, captured=captured):
                            graph.replay()
                            return captured
                    elif mode == "compile":
                        compiled = compiled_forward.setdefault("fn", torch.compile(forward))

                        def run(x=x, compiled=compiled):
                            return compiled(params, x)
                    else:
                        def run(x=x):
                            return forward(params, x)
                    median, minimum = measure(run)
                    logits = run()[0].float()
                    torch.cuda.synchronize()
                    rows = min(batch, count)
                    got = logits[:rows].double().cpu().numpy()
                result.update({"median_ms": round(median, 5), "min_ms": round(minimum, 5),
                               "images_per_second": round(batch / (median / 1000), 3)})
                result["logits"] = {"vs_numpy": compare(got, numpy_logits[:rows]),
                                    "vs_engine": compare(got, engine_logits[:rows]) if engine_logits is not None else None}
                ok = all(within(r, spec["tolerance"]) for r in result["logits"].values() if r is not None)
                result["logits"]["pass"] = ok
                line = (f"{mode:>13} batch {batch:>4}: {result['images_per_second']:10.1f} images/s, median {median:.4f} ms, "
                        f"min {minimum:.4f} ms; logits vs numpy {result['logits']['vs_numpy']['relative']:.2e}")
                if engine_logits is not None:
                    line += f", vs engine {result['logits']['vs_engine']['relative']:.2e}"
                print(line + ("" if ok else f"  FAIL (tolerance {spec['tolerance']:g}, top-1 must agree)"), flush=True)
                if not ok and spec["fp32"]:
                    report["failures"].append(f"{mode} batch {batch}: logits outside {spec['tolerance']:g} or top-1 differs")
            except Exception as e:  # one mode's failure (out of memory, capture refused) must not hide the others
                result["error"] = f"{type(e).__name__}: {e}"
                print(f"{mode:>13} batch {batch:>4}: {result['error']}", flush=True)
                if spec["fp32"]:
                    report["failures"].append(f"{mode} batch {batch}: {result['error']}")
            finally:
                del graph
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
            write()
        entry["pass"] = all(r.get("logits", {}).get("pass", False) for r in entry["results"])
    set_tf32(False)
    report["complete"] = True
    report["passed"] = not report["failures"]
    report["seconds"] = round(time.time() - started, 1)
    write()
    failed = report["failures"]
    print(f"FP32 comparisons: {'all within tolerance' if not failed else f'{len(failed)} failed'}; wrote {a.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
