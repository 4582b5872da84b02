#!/usr/bin/env bash
# Lists the source files of the `nt` crate that a driver build compiles (x86_64-pc-windows-msvc and
# aarch64-pc-windows-msvc), as rustc itself records them in its dep-info, and fails if any of them
# belongs to the host emulation (nt/src/host/). This is the ABI a reviewer audits: everything else in
# the crate is the emulation, which never reaches a `.sys`.
#
# Usage: nt/kernel-sources.sh [--quiet]     (from anywhere; needs the two rustup targets)
set -euo pipefail
cd "$(dirname "$0")/.."
quiet=${1:-}
status=0
for target in x86_64-pc-windows-msvc aarch64-pc-windows-msvc; do
  dir=target/kernel-sources
  cargo build --quiet --manifest-path nt/Cargo.toml --target "$target" --target-dir "$dir"
  depinfo=$(ls -t "$dir/$target"/debug/deps/nt-*.d | head -1)
  # The first line of a dep-info file is "<output>: <source> <source> ...".
  sources=$(head -1 "$depinfo" | cut -d: -f2- | tr ' ' '\n' | grep '\.rs$' | sed "s|^$PWD/||" | sort)
  count=$(printf '%s\n' "$sources" | wc -l)
  lines=$(printf '%s\n' "$sources" | xargs cat | wc -l)
  echo "kernel-sources: $target compiles $count files of nt ($lines lines)"
  [ "$quiet" = --quiet ] || printf '  %s\n' $sources
  if printf '%s\n' "$sources" | grep -q '^nt/src/host/'; then
    echo "kernel-sources: FAIL: the $target build compiles host-emulation files:" >&2
    printf '%s\n' "$sources" | grep '^nt/src/host/' >&2
    status=1
  fi
done
exit $status
