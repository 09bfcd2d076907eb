#!/usr/bin/env bash
# Runs, on the GPU validation machine, every CUDA check of the engine with the NativeAOT binary that
# build.sh made, and writes the results into $OUT (or ./gpu-results when OUT is unset):
#   environment.txt  machine, driver, toolkit, PyTorch versions
#   info.txt         `alexnet info`
#   check.txt        `alexnet check --device cuda`: every kernel and cuBLAS GEMM against the C# references
#   bench.txt        `alexnet bench kernels --device cuda` (device-timed medians per kernel) and
#                    `alexnet bench --device cuda --format json` at batch 1, 64 and 256 (the whole network)
#   features.txt     `alexnet features --device cuda` over synthetic full-size weights and three PNGs, all
#                    14 layers, then checked by the independent numpy implementation of the reference
#   classify.txt     `alexnet classify --device cuda --stats` over 512 PNGs of several sizes (the pipeline's
#                    end-to-end, decode-only and inference-only rates), then the numpy check of three of them
#   summary.txt      one line per step with its exit status
# It never stops at a failing step: a failure is evidence to keep.
set -uo pipefail
root="$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)"
out="${OUT:-$root/gpu-results}"
mkdir -p "$out"
exe="$root/.build/aot/alexnet"

# The toolkit's libraries may sit outside the loader's path; NVRTC also loads its builtins library by
# soname, so its folder must be on LD_LIBRARY_PATH rather than only probed by absolute path.
for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$dir" ] && export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export ALEXNET_CACHE_DIR="${ALEXNET_CACHE_DIR:-/tmp/alexnet-cache}"

step() {
  local name="$1"; shift
  local start=$SECONDS
  "$@" > "$out/$name.txt" 2>&1
  local rc=$?
  echo "$name: exit $rc ($((SECONDS - start)) s): $*" >> "$out/summary.txt"
}

: > "$out/summary.txt"
{
  date -u
  uname -a
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1
  ls /usr/local/cuda*/lib64/libnvrtc.so* /usr/local/cuda*/lib64/libcublas.so* 2>&1
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" 2>&1
} > "$out/environment.txt" 2>&1

step info "$exe" info
step check "$exe" check --device cuda
# Compiled kernels are cached: the second run must not compile again.
step check-warm "$exe" check --device cuda
bench() {
  "$exe" bench kernels --device cuda --warmup 5 --repeats 50
  "$exe" bench --device cuda --batch 1,64,256 --iterations 50 --warmup 5 --format json
}
step bench bench

# The whole network on the GPU against the numpy implementation (float64, the weight file's own layouts).
work="$(mktemp -d)"
reference="$root/Tests/Fixtures/reference/alexnet_numpy.py"
layers=conv1,norm1,pool1,conv2,norm2,pool2,conv3,conv4,conv5,pool5,fc6,fc7,fc8,prob
features() {
  python3 "$reference" --make-inputs "$work" &&
  "$exe" features --device cuda --weights "$work/w.npz" --layer "$layers" --out "$work/features" \
    "$work/image0.png" "$work/image1.png" "$work/image2.png" &&
  python3 "$reference" --weights "$work/w.npz" --features "$work/features.npz" --layers "$layers" \
    "$work/image0.png" "$work/image1.png" "$work/image2.png"
}
step features features

# The classify pipeline on the GPU: rates with every core decoding, and the results of resized images
# against the numpy implementation of the reference preprocessing and network.
classify() {
  python3 - "$work" <<'PY' &&
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
folder = sys.argv[1] + "/many"
import os; os.makedirs(folder, exist_ok=True)
spec = __import__("importlib.util").util.spec_from_file_location("ref", os.environ["REFERENCE"])
ref = __import__("importlib.util").util.module_from_spec(spec); spec.loader.exec_module(ref)
rng = np.random.default_rng(7)
for i, (w, h) in enumerate([(500, 375), (640, 480), (227, 227), (1024, 768)] * 128):
    ref.write_png(f"{folder}/{i:04d}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
PY
  "$exe" classify --device cuda --weights "$work/w.npz" --batch 128 --stats --format json "$work/many" > "$work/many.jsonl" &&
  head -3 "$work/many.jsonl" > "$work/three.jsonl" &&
  python3 "$reference" --weights "$work/w.npz" --classify-json "$work/three.jsonl"
}
export REFERENCE="$reference"
step classify classify
cat "$out/summary.txt"
