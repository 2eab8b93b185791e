#!/usr/bin/env bash
# Runs dsa_decode.py against a cxlkv-poold of its own over a shared-memory region (host memory,
# registered with the GPU: the stand-in for a CXL device behind the same link): batch 16 over
# 16 distinct 32K prefixes, then 16 requests over 4 distinct 128K prefixes (the region holds 25 GB
# either way). Needs a CUDA GPU, torch with CUDA, and the package importable.
#   CXLKV_POOLD   the daemon binary (default: build/pool/cxlkv-poold)
#   OUT           where the JSON figures go (default: the current directory)
set -euo pipefail
trap 'echo "run_dsa_decode: failed: $BASH_COMMAND" >&2' ERR
here=$(cd "$(dirname "$0")" && pwd)
poold=${CXLKV_POOLD:-$here/../../build/pool/cxlkv-poold}
out=${OUT:-.}
sock=/tmp/cxlkv-dsa-decode.sock
run() {  # name, then dsa_decode.py's arguments
  local name=$1 pid
  shift
  rm -f /dev/shm/cxlkv-dsa-decode /dev/shm/cxlkv-dsa-decode.meta "$sock"
  "$poold" --backend shm --path /cxlkv-dsa-decode --size 28GiB --format --layout deepseek-v3.2 --slab-pages 8 \
    --socket "$sock" --metrics-port 0 --tenant dsa:dsa-token --log-level warn --read-lease-ttl-ms 600000 &
  pid=$!
  for _ in $(seq 600); do [ -S "$sock" ] && break; sleep 0.05; done
  python3 "$here/dsa_decode.py" --endpoint "unix:$sock" --tenant dsa --token dsa-token --json "$out/dsa-$name.json" "$@"
  kill "$pid"
  wait "$pid" || true
  rm -f /dev/shm/cxlkv-dsa-decode /dev/shm/cxlkv-dsa-decode.meta
}
run 32k --batch 16 --tokens 32768
run 128k --batch 16 --prefixes 4 --tokens 131072
