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

started=$SECONDS
say() { printf 'wine-tier: [%3ss] %s\n' "$((SECONDS - started))" "$*"; }

work="$(mktemp -d /tmp/wine-tier.XXXXXX)"
export WINEPREFIX="$work/prefix"
export WINEDLLOVERRIDES="mscoree,mshtml="
export WINEDEBUG="warn+debugstr"
log="$work/wine.log"       # stderr of the prefix's processes: winedevice.exe, hence DbgPrintEx
sclog="$work/sc.log"       # what the sc commands print
keepalive_pid=""

# The processes whose environment names this prefix (grep runs without it, not to find itself).
prefix_pids() {
    local p
    for p in /proc/[0-9]*; do
        if env -u WINEPREFIX grep -qsxF --null-data "WINEPREFIX=$WINEPREFIX" "$p/environ"; then
            printf '%s ' "${p#/proc/}"
        fi
    done
}

cleanup() {
    status=$?
    if command -v wineserver >/dev/null; then
        wineserver -k 2>/dev/null || true
        timeout "$bound" wineserver -w 2>/dev/null || true
    fi
    if [ -n "$keepalive_pid" ]; then
        exec 9>&-
        kill "$keepalive_pid" 2>/dev/null || true
        wait "$keepalive_pid" 2>/dev/null || true
    fi
    # wineserver -k kills them; wait (bounded) until no process of this prefix is left.
    local deadline=$((SECONDS + bound))
    while [ $SECONDS -lt $deadline ] && [ -n "$(prefix_pids)" ]; do
        sleep 0.2
    done
    [ -z "$(prefix_pids)" ] || echo "wine-tier: processes of $WINEPREFIX still running: $(prefix_pids)" >&2
    if [ -n "$keep" ]; then
        mkdir -p "$keep"
        cp "$work"/*.log "$keep"/ 2>/dev/null || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The lines of the logs that tell what happened (the driver's, Wine's errors, the stubs it hit).
summary() {
    echo "--- driver (DbgPrintEx):"
    grep -h 'debugstr' "$log" "$sclog" 2>/dev/null | sed -E 's/^.*vDbgPrintExWithPrefix [0-9a-f:]+ /  /' || true
    echo "--- Wine errors and stubs reached (count, line without addresses):"
    grep -hiE 'err:|unimplemented function|page fault|stub' "$log" "$sclog" 2>/dev/null \
        | grep -vE 'winediag|systray|rpcss|hid:|MmBuildMdlForNonPagedPool' \
        | sed -E 's/^[0-9a-f]{4}://; s/0x[0-9a-fA-F]+|[0-9A-F]{8,16}/#/g' | sort | uniq -c | sort -rn | head -20 || true
}
fail() {
    say "FAIL: $*"
    summary
    exit 1
}

# Runs a wine command with a bound; its output goes to the sc log.
wine_cmd() {
    echo "+ wine $*" >>"$sclog"
    timeout "$bound" wine "$@" >>"$sclog" 2>&1
}

# 1. Wine.
if ! command -v wine >/dev/null || ! command -v wineserver >/dev/null; then
    say "installing wine64 (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wine64 >/dev/null
fi
command -v ss >/dev/null || fail "ss not found (apt-get install iproute2)"
say "$(wine --version 2>/dev/null)"
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

# 3. A fresh prefix. The processes of a prefix live while a non-system process does, and
# winedevice.exe writes to the stderr of the process that started the prefix's services: so after
# the first boot, a long-lived `wine cmd` (reading a FIFO the script holds open) restarts it with
# its stderr in $log.
say "booting a fresh prefix in $WINEPREFIX"
timeout 120 wineboot -i >"$work/boot.log" 2>&1 || fail "wineboot -i (see boot.log)"
timeout "$bound" wineserver -w || fail "the prefix did not shut down after its first boot"
mkfifo "$work/hold"
wine cmd <"$work/hold" >"$log" 2>&1 &
keepalive_pid=$!
exec 9>"$work/hold"
# Once cmd answers, its process has started the prefix's services (Wine starts them, and waits for
# them, while the first process of a session initialises), so they write to $log.
echo "echo wine-tier-ready" >&9
deadline=$((SECONDS + bound))
until grep -q '>wine-tier-ready' "$log"; do
    [ $SECONDS -lt $deadline ] || fail "the prefix did not start within ${bound}s"
    sleep 0.2
done
cp "$sys" "$WINEPREFIX/drive_c/windows/system32/drivers/echo_driver.sys"
wine_cmd sc create echo type= kernel 'binPath=' 'C:\windows\system32\drivers\echo_driver.sys' \
    || fail "sc create"

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

# Stops the driver unless a case already did (the unload case runs sc stop itself).
stop_driver() {
    if timeout "$bound" wine sc query echo 2>/dev/null | grep -q 'STATE.*STOPPED'; then
        return
    fi
    say "sc stop echo"
    wine_cmd sc stop echo || fail "sc stop echo"
}

# 4. The cases, two start/stop cycles.
start_driver
say "cases: ${cases[*]}"
"$clients" --addr "127.0.0.1:$port" --unload-cmd "timeout $bound wine sc stop echo >>'$sclog' 2>&1" "${cases[@]}" \
    | tee "$work/cases.log" | sed 's/^/  /' || fail "client cases (above)"
stop_driver
start_driver
say "second cycle: echo-1mib-abortive"
"$clients" --addr "127.0.0.1:$port" echo-1mib-abortive | tee -a "$work/cases.log" | sed 's/^/  /' \
    || fail "second cycle"
stop_driver

# 5. What the driver and Wine said.
unloads="$(cat "$log" "$sclog" | grep -c 'echo: unloaded; ' || true)"
[ "$unloads" -eq 2 ] || fail "expected 2 'echo: unloaded' lines (one per cycle), found $unloads"
if cat "$log" "$sclog" | grep 'echo: unloaded; ' | grep -vq 'active 0,'; then
    fail "a connection was still active at unload"
fi
! grep -qi 'unimplemented function' "$log" "$sclog" || fail "Wine reached an unimplemented function"
! grep -qi 'page fault' "$log" "$sclog" || fail "a page fault"
! grep -q 'service 1053' "$sclog" || fail "a service start or stop timed out (1053)"
summary
say "ok: the Wine tier passed in $((SECONDS - started)) s"
