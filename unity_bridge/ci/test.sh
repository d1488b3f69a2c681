#!/usr/bin/env bash
# CI for the Unity package's engine-agnostic C#: builds bridge_core's shared library (if needed),
# compiles Runtime/Internal + Runtime/Core with mono's mcs (C# 7.2), starts `lpm-npc serve` on a
# free port (unless LPM_NPC_ADDRESS is set) and a second one with mutual TLS (certificates from
# bridge_core/tests/tls_fixture.py, which needs Python's `cryptography`), and runs
# ci/BridgeTest.cs under mono, P/Invoking the built liblpm_bridge.so.
#   bash unity_bridge/ci/test.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
native="${LPM_BRIDGE_BUILD_DIR:-$repo/build/bridge_core}"
out="$repo/build/unity_bridge"

if [ ! -f "$native/CMakeCache.txt" ]; then
  cmake -S "$repo/bridge_core" -B "$native" -DLPM_BRIDGE_TESTS=OFF
fi
cmake --build "$native" --target lpm_bridge -j2

mkdir -p "$out"
mcs -langversion:7.2 -warnaserror+ -nologo -target:library -out:"$out/LpmNpc.Core.dll" \
  "$repo"/unity_bridge/Runtime/Internal/*.cs "$repo"/unity_bridge/Runtime/Core/*.cs
mcs -langversion:7.2 -warnaserror+ -nologo -r:"$out/LpmNpc.Core.dll" -out:"$out/BridgeTest.exe" \
  "$here/BridgeTest.cs"

daemons=()
scratch=()
cleanup() {
  for pid in ${daemons[@]+"${daemons[@]}"}; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in ${daemons[@]+"${daemons[@]}"}; do wait "$pid" 2>/dev/null || true; done
  rm -rf ${scratch[@]+"${scratch[@]}"}
}
trap cleanup EXIT

# start_daemon LOG [ARGS...]: `lpm-npc serve` on a free port with a fresh store; sets $started
# to its HOST:PORT once it listens.
start_daemon() {
  local log="$1" store pid
  shift
  store="$(mktemp -d)"
  scratch+=("$store")
  lpm-npc serve --host 127.0.0.1 --port 0 --store "$store" "$@" >"$log" 2>&1 &
  pid=$!
  daemons+=("$pid")
  for _ in $(seq 1 600); do  # up to 5 minutes for the checkpoint to load on a busy machine
    grep -q '^listening on ' "$log" && break
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "lpm-npc serve exited:"; cat "$log"; exit 1
    fi
    sleep 0.5
  done
  started="$(sed -n 's/^listening on //p' "$log" | head -n 1)"
  if [ -z "$started" ]; then
    echo "lpm-npc serve did not print 'listening on HOST:PORT':"; cat "$log"; exit 1
  fi
}

address="${LPM_NPC_ADDRESS:-}"
if [ -z "$address" ]; then
  start_daemon "$out/daemon.log"
  address="$started"
fi
# Mutual TLS: only the transport is tested there, so random test-tiny weights and no capacity
# measurement keep it quick.
pki="$(mktemp -d)"
scratch+=("$pki")
python3 "$repo/bridge_core/tests/tls_fixture.py" "$pki"
start_daemon "$out/daemon-tls.log" --random-weights --preset test-tiny --no-measure-capacity \
  --tls-cert "$pki/server.pem" --tls-key "$pki/server.key" --tls-client-ca "$pki/ca.pem"
tls_address="$started"

cd "$out"
LD_LIBRARY_PATH="$native${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" mono --debug "$out/BridgeTest.exe" \
  "$address" "$repo" "$tls_address" "$pki"
