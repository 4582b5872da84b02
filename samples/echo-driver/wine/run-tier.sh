#!/usr/bin/env bash
# The Wine tier: runs the real echo_driver.sys in Wine's NT kernel (winedevice.exe with Wine's own
# ntoskrnl.exe and netio.sys, an implementation of the NT and WSK ABI independent of ours) and
# drives it with the black-box client cases of tests/src/cases.rs over real TCP on 127.0.0.1:40007.
#
#   1. uses the installed Wine (installs Debian's wine64 with apt-get if there is none);
#   2. builds the release .sys with check-sys.sh (PE headers and import table checked), unless
#      --sys names one, and the client program (`echo-cases`);
#   3. boots a fresh prefix in a temporary directory, copies the .sys to system32\drivers,
#      `sc create echo type= kernel`, `sc start echo`, waits (bounded) until port 40007 listens;
#   4. runs the cases, `sc stop echo`, then a second `sc start` / echo / `sc stop` cycle in the same
#      prefix;
#   5. checks the driver's own DbgPrintEx lines (one "echo: unloaded; ..." per cycle, with active 0)
#      and that no "unimplemented function", page fault or error 1053 appears anywhere.
#
# Usage: samples/echo-driver/wine/run-tier.sh [--sys PATH] [--keep DIR] [CASE...]
#   CASE...    the cases to run in the first cycle (default: all that are not pending;
#              `target/debug/echo-cases --list` lists them); the unload case, if named, ends the cycle
#   --sys      load this .sys instead of building one
#   --keep     copy the logs to DIR at the end (the temporary prefix is always removed)
#
# Everything talks to loopback only. The driver listens on port 40007 (its default; the registry is
# not read), which must be free. `wineserver -k` runs on every exit, so no Wine process outlives the
# script. Exit status 0 only if every step and check passed.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
port=40007
bound=30 # seconds any single step may take (a boot, a start, a stop, the wait for the listener)

sys=""
keep=""
cases=()
while [ $# -gt 0 ]; do
    case "$1" in
        --sys) sys="$(realpath "$2")"; shift 2 ;;
        --keep) keep="$2"; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) cases+=("$1"); shift ;;
    esac
done
[ ${#cases[@]} -gt 0 ] || cases=(all)

tier=wine-tier
# shellcheck source=../../wine/tier-lib.sh
source "$root/samples/wine/tier-lib.sh"

# 1. Wine.
need_wine
listening() { ss -ltnH "sport = :$port" 2>/dev/null | grep -q .; }
listening && fail "port $port is already in use on this machine; the driver listens there"

# 2. The .sys and the client program.
if [ -z "$sys" ]; then
    say "building the release echo_driver.sys (check-sys.sh)"
    "$root/samples/echo-driver/check-sys.sh" "$work/sys" >"$work/check-sys.log" 2>&1 \
        || { cat "$work/check-sys.log"; fail "check-sys.sh"; }
    sys="$work/sys/echo_driver.sys"
fi
[ -f "$sys" ] || fail "$sys not found"
say "building the client cases (echo-cases)"
(cd "$root" && cargo build --locked -q -p e2e-tests --bin echo-cases)
clients="${CARGO_TARGET_DIR:-$root/target}/debug/echo-cases"

# 3. A fresh prefix, the driver installed.
boot_prefix
install_driver echo "$sys"

# Starts the driver and waits until it listens.
start_driver() {
    say "sc start echo"
    wine_cmd sc start echo || fail "sc start echo"
    local deadline=$((SECONDS + bound))
    until listening; do
        [ $SECONDS -lt $deadline ] || fail "port $port is not listening ${bound}s after sc start"
        sleep 0.2
    done
    say "listening on $port"
}

# 4. The cases, two start/stop cycles.
start_driver
say "cases: ${cases[*]}"
"$clients" --addr "127.0.0.1:$port" --unload-cmd "timeout $bound wine sc stop echo >>'$sclog' 2>&1" "${cases[@]}" \
    | tee "$work/cases.log" | sed 's/^/  /' || fail "client cases (above)"
stop_driver echo
start_driver
say "second cycle: echo-1mib-abortive"
"$clients" --addr "127.0.0.1:$port" echo-1mib-abortive | tee -a "$work/cases.log" | sed 's/^/  /' \
    || fail "second cycle"
stop_driver echo

# 5. What the driver and Wine said.
unloads="$(cat "$log" "$sclog" | grep -c 'echo: unloaded; ' || true)"
[ "$unloads" -eq 2 ] || fail "expected 2 'echo: unloaded' lines (one per cycle), found $unloads"
if cat "$log" "$sclog" | grep 'echo: unloaded; ' | grep -vq 'active 0,'; then
    fail "a connection was still active at unload"
fi
check_logs
summary
say "ok: the Wine tier passed in $((SECONDS - started)) s"
