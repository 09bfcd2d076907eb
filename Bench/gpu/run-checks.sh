#!/usr/bin/env bash
# Runs, on the GPU validation machine, every CUDA check of the engine with the NativeAOT binary that
# build.sh made, and writes the results into $OUT (or ./gpu-results when OUT is unset):
#   environment.txt  machine, driver, toolkit, PyTorch versions
#   info.txt         `alexnet info`
#   check.txt        `alexnet check --device cuda`: every kernel and cuBLAS GEMM against the C# references
#   bench.txt        `alexnet bench kernels --device cuda`: device-timed medians
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
step bench "$exe" bench kernels --device cuda --warmup 5 --repeats 50
cat "$out/summary.txt"
