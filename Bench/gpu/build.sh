#!/usr/bin/env bash
# Builds, on a build machine, what the GPU validation machine runs: a NativeAOT `alexnet` (that machine
# has no .NET) into .build/aot/ at the repository root, which goes to the GPU validation machine with the
# rest of the repository (it is ignored by git). Bench/gpu/run-checks.sh runs it there.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)"
dotnet publish "$root/Host/AlexNet.Cli/AlexNet.Cli.csproj" -c Release -r linux-x64 -p:PublishAot=true \
  -p:DebugType=none -o "$root/.build/aot" -nologo
# alexnet loads SkiaSharp's native decoders (libSkiaSharp.so) from its own folder: they travel together.
ls -la "$root/.build/aot/"
