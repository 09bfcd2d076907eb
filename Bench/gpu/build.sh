#!/usr/bin/env bash
# Builds, on a build machine, what the GPU validation machine runs: a NativeAOT `alexnet` (that machine
# has no .NET) into .build/aot/ at the repository root, which goes to the GPU validation machine with the
# rest of the repository (it is ignored by git). Bench/gpu/run-checks.sh runs it there.
# What travels there (the repository's files that git tracks or does not ignore, plus .build/aot/) must
# stay under 64 MiB: the size is printed, and the build fails when it is over.
#   --payload-only   print the payload size (and check it) without publishing
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)"
limit_mib="${ALEXNET_PAYLOAD_LIMIT_MIB:-64}"

if [ "${1:-}" != "--payload-only" ]; then
  dotnet publish "$root/Host/AlexNet.Cli/AlexNet.Cli.csproj" -c Release -r linux-x64 -p:PublishAot=true \
    -p:DebugType=none -o "$root/.build/aot" -nologo
  # alexnet loads SkiaSharp's native decoders (libSkiaSharp.so) from its own folder: they travel together.
  ls -la "$root/.build/aot/"
fi

# Sizes in bytes: the files git would hand over (tracked, or untracked and not ignored; a tracked file
# deleted in the working tree is skipped) and the NativeAOT folder.
repository=$(git -C "$root" ls-files -z --cached --others --exclude-standard \
  | (cd "$root" && xargs -0 -r stat -c %s -- 2>/dev/null || true) | awk '{ s += $1 } END { print s + 0 }')
aot=0
[ -d "$root/.build/aot" ] && aot=$(find "$root/.build/aot" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
total=$((repository + aot))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
echo "payload: $(mib "$total") MiB = repository $(mib "$repository") MiB + .build/aot $(mib "$aot") MiB (limit $limit_mib MiB)"
if [ "$total" -gt $((limit_mib * 1048576)) ]; then
  echo "build.sh: the payload is over $limit_mib MiB; the largest files:" >&2
  # Best effort: head closing the pipe early (SIGPIPE under pipefail) or a file vanishing under stat must
  # not change the exit status, which says only "over the limit".
  { git -C "$root" ls-files -z --cached --others --exclude-standard | (cd "$root" && xargs -0 -r stat -c '%s %n' -- 2>/dev/null)
    if [ -d "$root/.build/aot" ]; then (cd "$root" && find .build/aot -type f -printf '%s %p\n'); fi
  } | sort -rn | head -5 >&2 || true
  exit 1
fi
