#!/usr/bin/env bash
# Builds bridge_core (Release, no tests) and stages its header and shared library where
# LpmNpc.Build.cs looks: LpmNpc/Source/ThirdParty/LpmBridge/{include,lib/Linux}.
#   bash unreal_bridge/stage_bridge_core.sh [extra cmake args, e.g. a vcpkg toolchain]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
build="$repo/build/bridge_core_unreal"
stage="$here/LpmNpc/Source/ThirdParty/LpmBridge"
cmake -S "$repo/bridge_core" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLPM_BRIDGE_TESTS=OFF "$@"
cmake --build "$build" --target lpm_bridge -j"${JOBS:-2}"
mkdir -p "$stage/include" "$stage/lib/Linux"
cp "$repo/bridge_core/include/lpm_bridge.h" "$stage/include/"
# One file, named as the linker and the loader look for it.
cp -L "$build/liblpm_bridge.so" "$stage/lib/Linux/liblpm_bridge.so"
echo "staged bridge_core into $stage"
