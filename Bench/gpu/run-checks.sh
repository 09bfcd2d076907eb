#!/usr/bin/env bash
# Runs, on the GPU validation machine, every CUDA check of the engine with the NativeAOT binary that
# build.sh made, and the same network in PyTorch beside it, within about 8 minutes, writing at most eight
# files into $OUT (or ./gpu-results when OUT is unset), the most valuable first:
#   check.txt        `alexnet check`: every kernel, GEMM, device promise and the whole network against the
#                    C# references; then the same again, warm: the kernel cache means it must not compile
#   bench.json       `alexnet bench --format json` at batch 1, 64 and 256 (the whole network)
#   pytorch.json     Bench/gpu/pytorch_alexnet.py: the same network in PyTorch (eager FP32, CUDA graph,
#                    channels_last, TF32, FP16 autocast) timed the same way, its logits against the
#                    engine's and the numpy implementation's
#   summary.md       Bench/gpu/summarize.py: per batch, the engine against each PyTorch mode (images/s and
#                    the ratio), every other engine run below beside them, the fastest of each side, the
#                    logits comparisons, every step's exit status and seconds
#   environment.txt  machine, driver, toolkit, PyTorch versions, LD_LIBRARY_PATH, the CUDA libraries the
#                    loader's cache knows (`ldconfig -p`) and those in the probed folders, `alexnet info`
#   kernels.txt      `alexnet bench kernels` (device-timed medians per kernel and GEMM), then the JSON of
#                    each other engine run (also in summary.md's tables): `alexnet bench
#                    --fuse off`: the pass with each convolution's bias and ReLU as a pass of its own,
#                    `alexnet bench --workspace l2`: the lowering in chunks the size of the L2,
#                    `alexnet bench --graph off`: no CUDA graph captured, every pass launch by launch, and
#                    `alexnet bench --workspace 1024 --batch max`: the largest batch a 1 GiB workspace takes
#                    without chunking, in fp32 and fp16,
#                    `alexnet bench --epilogue kernel` then `--epilogue cublaslt`: fc6's and fc7's bias and ReLU
#                    as a kernel's pass, then in cuBLASLt's GEMM epilogue, and `--precision tf32`, `fp16`, `bf16`
#   features.txt     `alexnet features` over synthetic full-size weights and three PNGs, all 14 layers, then
#                    checked by the independent numpy implementation of the reference
#   classify.txt     `alexnet classify --stats` over PNGs of several sizes (end-to-end, decode-only and
#                    inference-only rates), then the numpy check of three of the results, then the
#                    crafted files of the test suite through both decoders (one record each, no death)
# It never stops at a failing step: a failure is evidence to keep. Each step runs under `timeout`, limited
# to what is left of the run's time budget, and a step with no time left is recorded as skipped. Every
# engine command runs with --verbose, so an unexpected exception leaves its stack trace in the results.
# Without the binary it stops at once, with one line on stderr and exit status 1: every step would fail.
#
# Settings (environment), for a smaller run elsewhere, e.g. against OpenCL on a machine without a GPU:
#   ALEXNET_GPU_CHECK_DEVICE      cuda (default) or opencl
#   ALEXNET_GPU_CHECK_EXE         the alexnet binary (default: .build/aot/alexnet)
#   ALEXNET_GPU_CHECK_BATCHES     batch sizes of both benchmarks (default 1,64,256)
#   ALEXNET_GPU_CHECK_ITERATIONS  timed passes per batch size (default 50); warm-up passes: ..._WARMUP (5)
#   ALEXNET_GPU_CHECK_REPEATS     timed launches per kernel in kernels.txt (default 50)
#   ALEXNET_GPU_CHECK_IMAGES      images for classify (default 512)
#   ALEXNET_GPU_CHECK_SECONDS     the run's time budget (default 420)
#   PYTHON                        the Python with numpy (and PyTorch, for pytorch.json) (default python3)
set -uo pipefail
root="$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)"
export EXE="${ALEXNET_GPU_CHECK_EXE:-$root/.build/aot/alexnet}"
# Before any other work: .build/ is ignored by git, so a copy of the working tree lacks the binary unless it
# was sent along, and without it every step below would fail in seconds while the run took its course.
if [ ! -f "$EXE" ] || [ ! -x "$EXE" ]; then
  echo "run-checks.sh: no executable alexnet binary at $EXE; build it on a build machine with 'bash Bench/gpu/build.sh' and send .build/aot/ along with the working tree (git ignores it)" >&2
  exit 1
fi
out="${OUT:-$root/gpu-results}"
mkdir -p "$out"
export DEVICE="${ALEXNET_GPU_CHECK_DEVICE:-cuda}"
export BATCHES="${ALEXNET_GPU_CHECK_BATCHES:-1,64,256}"
export ITERATIONS="${ALEXNET_GPU_CHECK_ITERATIONS:-50}"
export WARMUP="${ALEXNET_GPU_CHECK_WARMUP:-5}"
export REPEATS="${ALEXNET_GPU_CHECK_REPEATS:-50}"
export IMAGES="${ALEXNET_GPU_CHECK_IMAGES:-512}"
export PYTHON="${PYTHON:-python3}"
budget="${ALEXNET_GPU_CHECK_SECONDS:-420}"
export REFERENCE="$root/Tests/Fixtures/reference/alexnet_numpy.py"
export GPU_SCRIPTS="$root/Bench/gpu"
export OUTDIR="$out"
export LAYERS=conv1,norm1,pool1,conv2,norm2,pool2,conv3,conv4,conv5,pool5,fc6,fc7,fc8,prob

# The CUDA libraries may sit outside the loader's path. The engine probes these folders itself, in this order
# (Interop/NativeLibraries.cs: toolkits, newest version first; the driver's container mount; NVIDIA's Python
# wheels), but NVRTC loads its builtins library by soname, so they also go on LD_LIBRARY_PATH, after what it
# already holds (as the engine tries the loader's own path first).
library_folders() {
  local dir lib python kind
  { echo /usr/local/cuda; printf '%s\n' /usr/local/cuda-* | sort -rV; } | while IFS= read -r dir; do
    for lib in "$dir/lib64" "$dir/targets/x86_64-linux/lib"; do [ -d "$lib" ] && echo "$lib"; done
  done
  [ -d /usr/local/nvidia/lib64 ] && echo /usr/local/nvidia/lib64
  # Where pip puts wheels: a virtual or conda environment, the user's site-packages, the system's.
  { [ -n "${VIRTUAL_ENV:-}" ] && echo "$VIRTUAL_ENV/lib site-packages"
    [ -n "${CONDA_PREFIX:-}" ] && echo "$CONDA_PREFIX/lib site-packages"
    [ -n "${HOME:-}" ] && echo "$HOME/.local/lib site-packages"
    echo "/usr/local/lib site-packages dist-packages"
    echo "/usr/lib site-packages dist-packages"
  } | while read -r lib kinds; do
    printf '%s\n' "$lib"/python3* | sort -rV | while IFS= read -r python; do
      for kind in $kinds; do
        for dir in "$python/$kind"/nvidia/*/lib; do [ -d "$dir" ] && echo "$dir"; done
      done
    done
  done
  return 0
}
probed="$(library_folders | paste -sd: -)"
[ -n "$probed" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$probed"
export PROBED_FOLDERS="$probed"
export ALEXNET_CACHE_DIR="${ALEXNET_CACHE_DIR:-/tmp/alexnet-cache}"

# Intermediate files (weights, images, logs) stay out of $OUT, which keeps only the eight results.
export WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
steps="$WORK/steps.tsv"
: > "$steps"
rm -f "$out"/{summary.md,environment.txt,check.txt,bench.json,pytorch.json,kernels.txt,features.txt,classify.txt}
deadline=$((SECONDS + budget))
reserve=10  # seconds kept for the final summary

# step NAME LIMIT STDOUT STDERR FUNCTION WHAT: runs FUNCTION (exported) under timeout, with at most LIMIT
# seconds or what is left of the budget, appending its output to the two files; records its exit status,
# seconds and WHAT for the summary.
step() {
  local name="$1" limit="$2" stdout="$3" stderr="$4" fn="$5" what="$6"
  local left=$((deadline - SECONDS - reserve))
  if [ "$left" -lt 5 ]; then
    printf '%s\tskipped\t0\tno time left in the %s s budget\n' "$name" "$budget" >> "$steps"
    return
  fi
  [ "$left" -lt "$limit" ] && limit=$left
  local start=$SECONDS
  timeout --kill-after=5 "$limit" bash -c "$fn" >> "$stdout" 2>> "$stderr"
  local rc=$?
  [ "$rc" -eq 124 ] && echo "$name: stopped after its ${limit} s limit" >> "$stderr"
  printf '%s\t%s\t%s\t%s (limit %s s)\n' "$name" "$rc" "$((SECONDS - start))" "$what" "$limit" >> "$steps"
}

summarize() {
  local modes=() f
  # In the order they ran (oldest first); the labels have no spaces.
  for f in $(ls -tr "$WORK"/bench-*.json 2>/dev/null); do
    f=${f##*/bench-}
    modes+=(--mode "${f%.json}=$WORK/bench-$f")
  done
  timeout 30 "$PYTHON" "$GPU_SCRIPTS/summarize.py" --out "$out/summary.md" --bench "$out/bench.json" \
    --pytorch "$out/pytorch.json" --steps "$steps" --log "bench stderr=$WORK/bench.err" "${modes[@]}" \
    --log "PyTorch output=$WORK/pytorch.log" \
    --results "$out/check.txt" --results "$out/features.txt" --results "$out/classify.txt" \
    || echo "summarize.py failed (exit $?); step statuses: $(cat "$steps")" >> "$out/summary.md"
}

environment() {
  date -u
  uname -a
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm --format=csv
  echo "== LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  echo "== the loader's cache: ldconfig -p | grep -Ei 'cuda|nvrtc|cublas'"
  { ldconfig -p 2>/dev/null || /sbin/ldconfig -p; } | grep -Ei 'cuda|nvrtc|cublas'
  echo "== the CUDA libraries in the probed folders"
  local dir
  printf '%s\n' "$PROBED_FOLDERS" | tr ':' '\n' | while IFS= read -r dir; do
    [ -n "$dir" ] && ls -l "$dir"/libcuda.so* "$dir"/libnvrtc*.so* "$dir"/libcublas*.so* 2>/dev/null
  done
  "$PYTHON" -c "import sys, numpy; print('python', sys.version.split()[0], 'numpy', numpy.__version__)"
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
  echo "== alexnet info"
  "$EXE" info --verbose
}
check() {
  echo "== alexnet check --device $DEVICE"
  "$EXE" check --device "$DEVICE" --verbose
}
# Compiled kernels are cached: the second run must not compile again.
check_warm() {
  echo "== warm: alexnet check --device $DEVICE, again (compiled kernels come from the cache)"
  "$EXE" check --device "$DEVICE" --verbose
}
bench() {
  "$EXE" bench --verbose --device "$DEVICE" --batch "$BATCHES" --iterations "$ITERATIONS" --warmup "$WARMUP" --format json
}
# The engine's activations for three PNGs over synthetic full-size weights; the numpy check comes later.
features() {
  "$PYTHON" "$REFERENCE" --make-inputs "$WORK" &&
  echo "== alexnet features --device $DEVICE, every layer, three images" &&
  "$EXE" features --verbose --device "$DEVICE" --weights "$WORK/w.npz" --layer "$LAYERS" --out "$WORK/features" \
    "$WORK/image0.png" "$WORK/image1.png" "$WORK/image2.png"
}
pytorch() {
  local engine=()
  [ -f "$WORK/features.npz" ] && engine=(--engine-features "$WORK/features.npz")
  "$PYTHON" "$GPU_SCRIPTS/pytorch_alexnet.py" --weights "$WORK/w.npz" "${engine[@]}" \
    --out "$OUTDIR/pytorch.json" --batch "$BATCHES" --iterations "$ITERATIONS" --warmup "$WARMUP" \
    "$WORK/image0.png" "$WORK/image1.png" "$WORK/image2.png"
}
kernels() {
  "$EXE" bench kernels --verbose --device "$DEVICE" --warmup 5 --repeats "$REPEATS"
}
# Each of the other engine runs below writes its own `alexnet bench --format json` to $WORK/bench-LABEL.json, which
# summary.md puts beside bench.json and PyTorch in each batch's table; the JSON (per-operation times included) is
# also copied into kernels.txt, the file that comes back with it.
# bench_mode LABEL ARGS...: one such run, with ARGS added to the common options.
bench_mode() {
  local label="$1"
  shift
  echo "== alexnet bench $* (bench-$label.json, in summary.md)"
  "$EXE" bench --verbose --device "$DEVICE" --iterations "$ITERATIONS" --warmup "$WARMUP" --peer none --format json "$@" > "$WORK/bench-$label.json"
  local rc=$?
  cat "$WORK/bench-$label.json"
  echo
  [ "$rc" -eq 0 ] || echo "FAIL bench $*: exit $rc"
  return "$rc"
}
# bench.json has the GPU's default pass, each convolution's bias and ReLU fused into the next kernel; the same
# pass with them as passes of their own, for the difference the fusion makes.
bench_unfused() {
  bench_mode fuse-off --batch "$BATCHES" --fuse off
}
# bench.json replays a CUDA graph per batch size (--graph auto on a GPU) and times the launch-by-launch pass
# beside it in the same model; the same run with nothing captured at all, for the process as users run it off.
bench_nograph() {
  bench_mode graph-off --batch "$BATCHES" --graph off
}
# fc6's and fc7's bias and ReLU as bias_relu's pass after the GEMM (what --epilogue auto runs), then in the GEMM itself
# (cuBLASLt's RELU_BIAS epilogue), one after the other in one step so the two are timed on the same warm GPU. `alexnet
# check` above has already held the epilogue's results against the references.
bench_epilogue() {
  local e
  for e in kernel cublaslt; do
    bench_mode "epilogue-$e" --batch "$BATCHES" --epilogue "$e"
  done
}
# The reduced precisions, against bench.json's FP32: TF32 tensor cores on FP32 storage, then fp16 and bf16
# storage (half the bytes of every kernel and of the weights) with FP32-accumulating GEMMs. `alexnet check`
# above has already held each precision's probabilities to its tolerance against FP32.
bench_precisions() {
  local p
  for p in tf32 fp16 bf16; do
    bench_mode "$p" --batch "$BATCHES" --precision "$p"
  done
}
# The largest batch a 1 GiB workspace takes without chunking any lowering (`--batch max`: 153 images in FP32 and TF32,
# 306 in fp16/bf16, whose elements are half the size), FP32 then fp16: the most images one pass takes at full GEMM width.
bench_max() {
  local p
  for p in fp32 fp16; do
    bench_mode "max-$p" --batch max --workspace 1024 --precision "$p"
  done
}
# The workspace the size of the GPU's L2 (50 MB on an H100, 60 MB on an H200), against bench.json's 256 MiB:
# smaller chunks whose lowered input may stay in the cache between im2col and the GEMM.
bench_l2() {
  bench_mode workspace-l2 --batch "$BATCHES" --workspace l2
}
# The whole network against the numpy implementation (float64, the weight file's own layouts).
features_numpy() {
  echo "== numpy implementation of the reference against the engine's layers"
  "$PYTHON" "$REFERENCE" --weights "$WORK/w.npz" --features "$WORK/features.npz" --layers "$LAYERS" \
    "$WORK/image0.png" "$WORK/image1.png" "$WORK/image2.png"
}
# The classify pipeline: rates with every core decoding, and three results of resized images against the
# numpy implementation of the reference preprocessing and network.
classify() {
  "$PYTHON" - "$WORK/many" "$IMAGES" <<'PY' &&
import importlib.util, os, sys
import numpy as np
folder, count = sys.argv[1], int(sys.argv[2])
os.makedirs(folder, exist_ok=True)
spec = importlib.util.spec_from_file_location("ref", os.environ["REFERENCE"])
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)
rng = np.random.default_rng(7)
sizes = [(500, 375), (640, 480), (227, 227), (1024, 768)]
for i in range(count):
    w, h = sizes[i % len(sizes)]
    ref.write_png(f"{folder}/{i:04d}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
print(f"{count} PNGs written")
PY
  echo "== alexnet classify --device $DEVICE --stats, $IMAGES images" &&
  "$EXE" classify --verbose --device "$DEVICE" --weights "$WORK/w.npz" --batch 128 --stats --format json "$WORK/many" > "$WORK/many.jsonl" &&
  head -3 "$WORK/many.jsonl" > "$WORK/three.jsonl" &&
  echo "== numpy check of three results" &&
  "$PYTHON" "$REFERENCE" --weights "$WORK/w.npz" --classify-json "$WORK/three.jsonl"
}
# The crafted files of the test suite through both decoders of the binary (imagesharp in its worker
# processes, which are this binary too): one record per file, the run ends with status 1 (some files could
# not be classified), never a death.
hostile() {
  local folder="$GPU_SCRIPTS/../../Tests/Fixtures/hostile-images" decoder files rc lines
  mapfile -t files < <(find "$folder" -maxdepth 1 -type f ! -name '*.txt' ! -name '*.md' | sort)
  for decoder in skiasharp imagesharp; do
    echo "== alexnet classify --device $DEVICE --decoder $decoder, ${#files[@]} crafted files"
    "$EXE" classify --verbose --device "$DEVICE" --weights "$WORK/w.npz" --decoder "$decoder" --format json \
      "${files[@]}" > "$WORK/hostile-$decoder.jsonl"
    rc=$?
    lines=$(wc -l < "$WORK/hostile-$decoder.jsonl")
    cat "$WORK/hostile-$decoder.jsonl"
    if [ "$rc" -le 1 ] && [ "$lines" -eq "${#files[@]}" ]; then
      echo "images: hostile $decoder: $lines records for ${#files[@]} files, exit $rc"
    else
      echo "FAIL hostile $decoder: $lines records for ${#files[@]} files, exit $rc"
    fi
  done
}
export -f environment check check_warm bench features pytorch kernels bench_mode bench_unfused bench_nograph bench_epilogue bench_precisions bench_max bench_l2 features_numpy classify hostile

step environment 40 "$out/environment.txt" "$out/environment.txt" environment "versions, alexnet info"
step check 120 "$out/check.txt" "$out/check.txt" check "alexnet check --device $DEVICE"
step check-warm 60 "$out/check.txt" "$out/check.txt" check_warm "alexnet check --device $DEVICE (warm cache)"
step bench 90 "$out/bench.json" "$WORK/bench.err" bench \
  "alexnet bench --device $DEVICE --batch $BATCHES --iterations $ITERATIONS --warmup $WARMUP --format json"
summarize
step features 60 "$out/features.txt" "$out/features.txt" features "alexnet features --device $DEVICE, 14 layers, 3 PNGs"
if ! "$PYTHON" -c "import torch" > /dev/null 2>&1; then
  echo "pytorch: skipped: PyTorch is not installed ($PYTHON -c 'import torch' failed); no pytorch.json"
  printf 'pytorch\tskipped\t0\tPyTorch is not installed (%s -c "import torch" failed): no pytorch.json\n' "$PYTHON" >> "$steps"
elif [ ! -f "$WORK/w.npz" ]; then
  printf 'pytorch\tskipped\t0\tthe features step wrote no weight file to load\n' >> "$steps"
else
  step pytorch 150 "$WORK/pytorch.log" "$WORK/pytorch.log" pytorch \
    "pytorch_alexnet.py --batch $BATCHES --iterations $ITERATIONS --warmup $WARMUP, 7 modes (torch.compile last)"
fi
summarize
step kernels 60 "$out/kernels.txt" "$out/kernels.txt" kernels "alexnet bench kernels --device $DEVICE --warmup 5 --repeats $REPEATS"
step bench-unfused 60 "$out/kernels.txt" "$out/kernels.txt" bench_unfused "alexnet bench --fuse off --batch $BATCHES"
step bench-nograph 60 "$out/kernels.txt" "$out/kernels.txt" bench_nograph "alexnet bench --graph off --batch $BATCHES"
step bench-epilogue 60 "$out/kernels.txt" "$out/kernels.txt" bench_epilogue "alexnet bench --epilogue kernel, then cublaslt --batch $BATCHES"
step bench-l2 60 "$out/kernels.txt" "$out/kernels.txt" bench_l2 "alexnet bench --workspace l2 --batch $BATCHES"
step bench-max 60 "$out/kernels.txt" "$out/kernels.txt" bench_max "alexnet bench --workspace 1024 --batch max, fp32 then fp16"
step bench-precisions 90 "$out/kernels.txt" "$out/kernels.txt" bench_precisions "alexnet bench --precision tf32, fp16, bf16 --batch $BATCHES"
step features-numpy 60 "$out/features.txt" "$out/features.txt" features_numpy "alexnet_numpy.py against the engine's 14 layers"
step classify 90 "$out/classify.txt" "$out/classify.txt" classify "alexnet classify --device $DEVICE --stats, $IMAGES PNGs; numpy check of 3"
step hostile 60 "$out/classify.txt" "$out/classify.txt" hostile "alexnet classify, crafted files, both decoders"
summarize
cut -f1-3 "$steps" | tr '\t' ' '
