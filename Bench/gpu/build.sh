#!/usr/bin/env bash
# Builds, on a build machine, what the GPU machine runs: a NativeAOT `alexnet` (the GPU machine has no
# .NET) into .build/aot/ at the repository root. Pass that folder to the device tool's `carry`.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)"
dotnet publish "$root/Host/AlexNet.Cli/AlexNet.Cli.csproj" -c Release -r linux-x64 -p:PublishAot=true \
  -p:DebugType=none -o "$root/.build/aot" -nologo
ls -la "$root/.build/aot/alexnet"
