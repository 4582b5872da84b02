#!/usr/bin/env bash
# The report client's Wine tier: runs the real report_client.sys in Wine 8's NT kernel (winedevice.exe
# with Wine's ntoskrnl.exe and netio.sys) against a test server (report-server.py) on 127.0.0.1:40007.
# Wine 8's WskSocketConnect is a stub, so this is the tier where wsk-async's connect takes its
# fallback (WskSocket + WskBind + WskConnect); its WskDisconnect is a stub too.
#
#   1. uses the installed Wine (shared steps: samples/wine/tier-lib.sh);
#   2. builds the release .sys with check-sys.sh --package report-client, unless --sys names one;
#   3. starts the server, boots a fresh prefix, `sc create report type= kernel`, `sc start report`;
#   4. the server checks: reports arrive with growing sequence numbers; it closes the connection
#      after 3 and the driver reconnects; 2 more reports go on growing. Then `sc stop report`, and the
#      server must see the driver close the connection;
#   5. checks the driver's DbgPrintEx lines (its "report: unloaded; " line, two "report: connected
#      to 127.0.0.1:40007"), that Wine's stub WskSocketConnect was reached at most once (the
#      registration remembers the fallback), and that no "unimplemented function", page fault or
#      error 1053 appears.
#
# The driver's compiled-in defaults (src/config.rs) name localhost:40007, reporting every second:
# Wine resolves localhost through the host, which may answer ::1 first; Wine 8 cannot bind an IPv6
# socket, so the driver moves on to 127.0.0.1 (the tier prints the addresses it tried).
#
# Usage: samples/report-client/wine/run-tier.sh [--sys PATH] [--keep DIR]
#   --sys      load this .sys instead of building one
#   --keep     copy the logs to DIR at the end (the temporary prefix is always removed)
#
# Port 40007 must be free. `wineserver -k` runs on every exit, and the server is stopped, so no Wine
# process or server outlives the script. Exit status 0 only if every step and check passed.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
port=40007
bound=30 # seconds any single step may take (a boot, a start, a stop, the server's wait for a report)

sys=""
keep=""
while [ $# -gt 0 ]; do
    case "$1" in
        --sys) sys="$(realpath "$2")"; shift 2 ;;
        --keep) keep="$2"; shift 2 ;;
        -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

tier=report-tier
# shellcheck source=../../wine/tier-lib.sh
source "$root/samples/wine/tier-lib.sh"

# 1. Wine.
need_wine
command -v python3 >/dev/null || fail "python3 not found (the test server)"
listening() { ss -ltnH "sport = :$port" 2>/dev/null | grep -q .; }
listening && fail "port $port is already in use on this machine; the test server listens there"

# 2. The .sys.
if [ -z "$sys" ]; then
    say "building the release report_client.sys (check-sys.sh --package report-client)"
    "$root/samples/echo-driver/check-sys.sh" --package report-client "$work/sys" >"$work/check-sys.log" 2>&1 \
        || { cat "$work/check-sys.log"; fail "check-sys.sh"; }
    sys="$work/sys/report_client.sys"
fi
[ -f "$sys" ] || fail "$sys not found"

# 3. The server, the prefix, the driver.
server_log="$work/server.log"
server_status="$work/server.status"
extra_logs=("$server_log")
python3 "$here/report-server.py" --port "$port" --bound "$bound" --status "$server_status" >"$server_log" 2>&1 &
server_pid=$!
on_cleanup='kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null'
deadline=$((SECONDS + bound))
until listening; do
    kill -0 "$server_pid" 2>/dev/null || fail "the test server exited"
    [ $SECONDS -lt $deadline ] || fail "the test server is not listening on $port within ${bound}s"
    sleep 0.2
done
boot_prefix
install_driver report "$sys"
say "sc start report"
wine_cmd sc start report || fail "sc start report"

# 4. The server's checks, then the unload.
deadline=$((SECONDS + bound))
until [ -s "$server_status" ]; do
    [ $SECONDS -lt $deadline ] || fail "the server saw no reconnection within ${bound}s of sc start"
    sleep 0.2
done
grep -qx ok "$server_status" || fail "server: $(cat "$server_status")"
say "reports grew across a reconnection"
stop_driver report
server_rc=0
wait "$server_pid" || server_rc=$?
on_cleanup=""
[ "$server_rc" -eq 0 ] || fail "server: $(cat "$server_status")"
say "the unload closed the connection"

# 5. What the driver and Wine said.
drv() { grep -h 'debugstr' "$log" "$sclog" 2>/dev/null | grep "$1" || true; }
say "addresses tried: $(drv 'report: connecting to' | sed -E 's/.*connecting to //' | sort | uniq -c | tr -s ' \n' ' ')"
[ "$(drv 'report: unloaded; ' | wc -l)" -eq 1 ] || fail "expected one 'report: unloaded' line"
[ "$(drv "report: connected to 127.0.0.1:$port" | wc -l)" -ge 2 ] \
    || fail "expected two 'report: connected to 127.0.0.1:$port' lines (the connection and the reconnection)"
# Wine 8's stub WskSocketConnect is called once: the registration then goes straight to the fallback.
stub_calls="$(grep -c 'fixme:netio:wsk_socket_connect' "$log" || true)"
[ "$stub_calls" -le 1 ] || fail "WskSocketConnect called $stub_calls times: the fallback was not remembered"
check_logs
summary
say "ok: the report client's Wine tier passed in $((SECONDS - started)) s"
