#!/usr/bin/env bash
# Follows README.md's "Write your own driver" steps literally, in a scratch folder: every fenced
# block marked `<!-- write-your-own: PATH -->` is written to PATH, and every block marked
# `<!-- write-your-own: run -->` is run with bash, in document order, from the scratch folder. The
# checkout is linked there as `this-repo`, the name the README's paths use. The last step is the
# README's own check-sys.sh call, so this passes only if a driver written from the README alone
# builds as a .sys that check-sys.sh accepts.
#
# Usage: driver-runtime/try-write-your-own.sh [--keep]   (--keep: leave the scratch folder)
# Needs what check-sys.sh needs, and network access to crates.io unless the registry cache has the
# host emulation's dependencies (the scratch package resolves its own Cargo.lock, as a newcomer's does).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
readme="$root/README.md"
keep=""
[ "${1:-}" = "--keep" ] && keep=1

fail() { echo "try-write-your-own: FAIL: $*" >&2; exit 1; }
say() { echo "try-write-your-own: $*"; }

scratch="$(mktemp -d /tmp/write-your-own.XXXXXX)"
if [ -n "$keep" ]; then
    trap 'say "scratch folder kept: $scratch"' EXIT
else
    trap 'rm -rf "$scratch"' EXIT
fi
ln -s "$root" "$scratch/this-repo"
# A newcomer's shell has no target directory of ours.
unset CARGO_TARGET_DIR

marker='^<!-- write-your-own: (.+) -->$'
target=""   # what the next block is for: a path or "run"
inside=""   # in a marked block
content=""
files=0
runs=0
while IFS= read -r line || [ -n "$line" ]; do
    if [ -n "$inside" ]; then
        if [[ "$line" == '```' ]]; then
            inside=""
            if [ "$target" = run ]; then
                runs=$((runs + 1))
                say "running step $runs:"
                sed 's/^/    $ /' <<<"${content%$'\n'}"
                (cd "$scratch" && bash -euo pipefail -c "$content") || fail "step $runs failed"
            else
                mkdir -p "$(dirname "$scratch/$target")"
                printf '%s' "$content" >"$scratch/$target"
                files=$((files + 1))
                say "wrote $target ($(wc -l <"$scratch/$target") lines)"
            fi
            target=""
        else
            content+="$line"$'\n'
        fi
    elif [[ "$line" =~ $marker ]]; then
        target="${BASH_REMATCH[1]}"
        case "$target" in /* | *..*) fail "marker path '$target' leaves the scratch folder" ;; esac
    elif [ -n "$target" ]; then
        # The marked block must follow its marker directly.
        [[ "$line" == '```'* ]] || fail "the marker for '$target' is not followed by a fenced block"
        inside=1
        content=""
    fi
done <"$readme"
[ -z "$inside" ] || fail "README.md ends inside the block for '$target'"
[ "$files" -ge 4 ] || fail "only $files files found in README.md's steps (expected Cargo.toml, build.rs, config.toml, lib.rs)"
[ "$runs" -ge 2 ] || fail "only $runs shell steps found in README.md"
[ -f "$scratch/my-driver/my_driver.sys" ] || fail "the steps did not produce my-driver/my_driver.sys"
say "ok: $files files and $runs steps from README.md built my_driver.sys and check-sys.sh accepted it"
