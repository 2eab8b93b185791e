#!/usr/bin/env bash
# `meson install` as a user of the library meets it: installs the build into a temporary root,
# starts the installed cxlkv-poold, then builds lookup.c and lookup.cc (and gpu_lookup.cc where
# the GPU library is built) with nothing but `pkg-config --cflags --libs cxlkv` (cxlkv-gpu) and
# runs them against that daemon; then imports the installed Python package and looks a page up.
# The root is removed on exit; the daemon never outlives the test.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR PYTHON
set -Eeuo pipefail
build=$(realpath "${1:?usage: install_test.sh BUILD_DIR SOURCE_DIR}")
src=$(realpath "${2:?usage: install_test.sh BUILD_DIR SOURCE_DIR}")
here=$src/tests/install
python=${3:?usage: install_test.sh BUILD_DIR SOURCE_DIR PYTHON}
say() { echo "install_test: $*"; }
die() { echo "install_test: FAIL: $*" >&2; exit 1; }
trap 'echo "install_test: FAIL: \`$BASH_COMMAND\` exited $?" >&2' ERR

root=$(mktemp -d /tmp/cxlkv-install-XXXXXX)
sock=$root/pool.sock
region=/cxlkv-install-$$
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$root" "/dev/shm$region"
}
trap cleanup EXIT

say "meson install --destdir $root"
meson install -C "$build" --destdir "$root" --no-rebuild --quiet >/dev/null
prefix=$(meson introspect "$build" --buildoptions | python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(o["prefix"] + " " + o["libdir"])')
read -r prefix libdir <<<"$prefix"
case "$libdir" in /*) ;; *) libdir=$prefix/$libdir ;; esac
# The installed tree, read where it lies: its .pc files first, with prefix pointed into the
# temporary root (the files say ${prefix}/include and ${prefix}/lib...; CUDA's paths stay).
export PKG_CONFIG_PATH=$root$libdir/pkgconfig
pc() { pkg-config --define-variable=prefix="$root$prefix" "$@"; }
export LD_LIBRARY_PATH=$root$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for f in "$prefix/include/cxlkv/cxlkv.h" "$prefix/include/cxlkv/client.h" "$prefix/bin/cxlkv-poold"; do
  [ -e "$root$f" ] || die "meson install did not install $f"
done
pc --exists cxlkv || die "no cxlkv.pc under $PKG_CONFIG_PATH"
say "pkg-config --cflags --libs cxlkv: $(pc --cflags --libs cxlkv)"

say "starting the installed cxlkv-poold"
"$root$prefix/bin/cxlkv-poold" --backend shm --path "$region" --size 64MiB \
  --layout 'custom:name=install,layers=4,page_tokens=64,stream=latent/656/656/sparse,stream=indexer/132/132/bulk' \
  --slab-pages 1 --socket "$sock" --metrics-port 0 --tenant install:install-token --log-level warn \
  --huge-pages off &  # the region stays the shm object this test removes
pid=$!
for _ in $(seq 200); do
  [ -S "$sock" ] && break
  kill -0 "$pid" 2>/dev/null || die "cxlkv-poold exited during start-up"
  sleep 0.05
done
[ -S "$sock" ] || die "cxlkv-poold did not open $sock within 10 s"

# shellcheck disable=SC2046  # pkg-config's output is a list of flags, split on purpose
cc -std=c11 -Wall -Werror "$here/lookup.c" -o "$root/lookup-c" $(pc --cflags --libs cxlkv)
"$root/lookup-c" "unix:$sock"
# shellcheck disable=SC2046
c++ -std=c++20 -Wall -Werror "$here/lookup.cc" -o "$root/lookup-cc" $(pc --cflags --libs cxlkv)
"$root/lookup-cc" "unix:$sock"
if [ -e "$root$libdir/pkgconfig/cxlkv-gpu.pc" ]; then
  [ -e "$root$prefix/include/cxlkv/gpu.h" ] || die "cxlkv-gpu.pc is installed but cxlkv/gpu.h is not"
  say "pkg-config --cflags --libs cxlkv-gpu: $(pc --cflags --libs cxlkv-gpu)"
  # shellcheck disable=SC2046
  c++ -std=c++20 -Wall -Werror "$here/gpu_lookup.cc" -o "$root/lookup-gpu" $(pc --cflags --libs cxlkv-gpu)
  "$root/lookup-gpu" "unix:$sock"
else
  say "CUDA not built here: no cxlkv-gpu to build against"
fi

site=$(find "$root" -type d -name cxlkv -path '*-packages/cxlkv' | head -n 1)
[ -n "$site" ] || die "meson install put no cxlkv package in a site-packages folder under $root"
[ -f "$site/_libpath.py" ] || die "the installed package has no _libpath.py"
grep -q "LIBRARY = \"$libdir/libcxlkv.so.0\"" "$site/_libpath.py" ||
  die "the installed package does not point at the installed library ($libdir/libcxlkv.so.0): $(cat "$site/_libpath.py")"
say "python: the installed package at ${site#"$root"}"
# Under the temporary root the recorded path does not exist yet: CXLKV_LIBRARY stands in for it.
PYTHONPATH=$(dirname "$site") CXLKV_LIBRARY=$root$libdir/libcxlkv.so.0 "$python" - "unix:$sock" <<'PY'
import sys
import numpy as np
import cxlkv
assert "context manager" in (cxlkv.Client.__doc__ or "")
with cxlkv.Client(sys.argv[1], "install", "install-token", "install-c") as c:
    keys = c.page_keys(np.arange(1000, 1000 + c.layout.page_tokens, dtype=np.int32))
    with c.lookup(keys) as lease:
        assert lease.pages == 1, lease.pages  # the page lookup.c committed
        row = lease.gather_topk("latent", 1, np.array([5], dtype=np.int32))
        want = ((5 * 656 + np.arange(656)) * 7 + 1 + 0) % 256
        assert np.array_equal(row[0], want.astype(np.uint8)), "entry 5 of layer 1 differs"
print("install_test: python: the installed cxlkv package found lookup.c's page and read it back")
PY
say "PASS"
