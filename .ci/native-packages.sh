#!/usr/bin/env bash
# Installs (idempotently) the Debian packages AlexNet.Cuda needs on a machine without a GPU:
#   - PoCL (OpenCL on the CPU) and CLBlast: the backend the tests run kernels and GEMMs on;
#   - NVRTC 11.8 and libcuda1 from Debian non-free: NVRTC compiles every kernel for sm_80/sm_90 in the
#     tests, and libcuda1 lets the tests look up every CUDA driver entry point (cuInit then reports
#     CUDA_ERROR_NO_DEVICE, which is the "no CUDA device" path);
#   - cuBLAS 11 (optional, --with-cublas): lets the tests look up every cuBLAS entry point;
#   - numpy for Debian's python3 (optional, --with-numpy): lets a test read a full-size weight file
#     that numpy's own np.save wrote.
# Usage: native-packages.sh [--check] [--with-cublas] [--with-numpy]
#   --check   only report what is missing: prints the apt-get line and exits 1 when something is.
set -euo pipefail

required=(ocl-icd-libopencl1 pocl-opencl-icd clinfo libclblast1 libnvrtc11.2 libnvrtc-builtins11.8 libcuda1)
check_only=0
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    --with-cublas) required+=(libcublas11) ;;
    --with-numpy) required+=(python3-numpy) ;;
    *) echo "native-packages.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${required[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

# Debian's NVRTC, libcuda1 and cuBLAS live in contrib/non-free. Rather than edit the system's apt
# sources, point apt at a private copy of them with those components added, for these calls only.
state_dir="${XDG_CACHE_HOME:-$HOME/.cache}/alexnet-cuda/apt"
sources="$state_dir/debian-nonfree.sources"
apt_opts=(-o "Dir::Etc::SourceList=$sources" -o "Dir::Etc::SourceParts=-")
install_line="apt-get ${apt_opts[*]} install -y --no-install-recommends ${missing[*]}"

if [ "$check_only" = 1 ] || [ "$(id -u)" != 0 ]; then
  echo "missing native packages: ${missing[*]}" >&2
  echo "install them as root with: sudo bash $(realpath "$0")" >&2
  echo "(it runs: apt-get update and $install_line, with contrib non-free enabled in $sources)" >&2
  exit 1
fi

mkdir -p "$state_dir"
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
cat > "$sources" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: $codename $codename-updates
Components: main contrib non-free non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
echo "installing native packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get "${apt_opts[@]}" update -qq >&2
apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" >&2
