# The parts every Wine tier shares (sourced by samples/*/wine/run-tier.sh): a fresh prefix in a
# temporary directory whose winedevice.exe writes the drivers' DbgPrintEx lines to $log, installing
# and stopping a kernel service with bounded `sc` commands, the log summary, and a cleanup that runs
# `wineserver -k` and waits (bounded) until no process of the prefix is left.
#
# The sourcing script sets, before sourcing:
#   tier     the name its lines are prefixed with (e.g. wine-tier, report-tier)
#   bound    the seconds any single step may take
#   keep     a directory to copy the logs to at the end, or ""
# and then calls, in order: need_wine, boot_prefix, install_driver NAME SYS, and stop_driver NAME
# (as often as it starts the driver), then check_logs. It may set extra_logs (more files for
# summary/check_logs) and on_cleanup (a command run first on exit, e.g. to stop its own server).

started=$SECONDS
say() { printf '%s: [%3ss] %s\n' "$tier" "$((SECONDS - started))" "$*"; }

work="$(mktemp -d "/tmp/$tier.XXXXXX")"
export WINEPREFIX="$work/prefix"
export WINEDLLOVERRIDES="mscoree,mshtml="
export WINEDEBUG="warn+debugstr"
log="$work/wine.log"       # stderr of the prefix's processes: winedevice.exe, hence DbgPrintEx
sclog="$work/sc.log"       # what the sc commands print
keepalive_pid=""
extra_logs=()
on_cleanup=""

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
    [ -z "$on_cleanup" ] || eval "$on_cleanup" || true
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
    [ -z "$(prefix_pids)" ] || echo "$tier: processes of $WINEPREFIX still running: $(prefix_pids)" >&2
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
    local extra
    for extra in "${extra_logs[@]}"; do
        echo "--- $(basename "$extra"):"
        sed 's/^/  /' "$extra" 2>/dev/null | tail -20 || true
    done
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

# Wine (Debian's wine64 with apt-get if there is none) and ss.
need_wine() {
    if ! command -v wine >/dev/null || ! command -v wineserver >/dev/null; then
        say "installing wine64 (apt-get)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wine64 >/dev/null
    fi
    command -v ss >/dev/null || fail "ss not found (apt-get install iproute2)"
    say "$(wine --version 2>/dev/null)"
}

# A fresh prefix. The processes of a prefix live while a non-system process does, and
# winedevice.exe writes to the stderr of the process that started the prefix's services: so after
# the first boot, a long-lived `wine cmd` (reading a FIFO the script holds open) restarts it with
# its stderr in $log.
boot_prefix() {
    say "booting a fresh prefix in $WINEPREFIX"
    timeout 120 wineboot -i >"$work/boot.log" 2>&1 || fail "wineboot -i (see boot.log)"
    timeout "$bound" wineserver -w || fail "the prefix did not shut down after its first boot"
    mkfifo "$work/hold"
    wine cmd <"$work/hold" >"$log" 2>&1 &
    keepalive_pid=$!
    exec 9>"$work/hold"
    # Once cmd answers, its process has started the prefix's services (Wine starts them, and waits
    # for them, while the first process of a session initialises), so they write to $log.
    echo "echo wine-tier-ready" >&9
    local deadline=$((SECONDS + bound))
    until grep -qs '>wine-tier-ready' "$log"; do
        [ $SECONDS -lt $deadline ] || fail "the prefix did not start within ${bound}s"
        sleep 0.2
    done
}

# install_driver NAME SYS: copies SYS to system32\drivers\NAME.sys's file name and creates the
# kernel service NAME for it.
install_driver() {
    local name="$1" file
    file="$(basename "$2")"
    cp "$2" "$WINEPREFIX/drive_c/windows/system32/drivers/$file"
    wine_cmd sc create "$name" type= kernel 'binPath=' "C:\\windows\\system32\\drivers\\$file" \
        || fail "sc create $name"
}

# stop_driver NAME: stops the service unless it already stopped (a case may run sc stop itself).
stop_driver() {
    if timeout "$bound" wine sc query "$1" 2>/dev/null | grep -q 'STATE.*STOPPED'; then
        return
    fi
    say "sc stop $1"
    wine_cmd sc stop "$1" || fail "sc stop $1"
}

# What Wine said, whatever the driver: no unimplemented function, no page fault, no service timeout.
check_logs() {
    ! grep -qi 'unimplemented function' "$log" "$sclog" || fail "Wine reached an unimplemented function"
    ! grep -qi 'page fault' "$log" "$sclog" || fail "a page fault"
    ! grep -q 'service 1053' "$sclog" || fail "a service start or stop timed out (1053)"
}
