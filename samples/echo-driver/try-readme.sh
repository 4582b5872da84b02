#!/usr/bin/env bash
# Does what the README tells a newcomer to do with the host program, literally: `cargo run -p
# echo-driver` (no options: port 40007), echo over IPv4 and IPv6, Ctrl-C (SIGINT), then expects exit
# status 0, the counters, and an empty leak report. Run from anywhere in the checkout.
# Needs: python3 (the echo client). Fails loudly; prints what it checked.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
fail() { echo "try-readme: FAIL: $*" >&2; echo "--- program output:" >&2; cat "$log" >&2; exit 1; }

# `cargo run` replaces itself with the program on Unix, so $! is the program once it is built.
cargo run -p echo-driver >"$log" 2>&1 &
pid=$!
# The first run builds the workspace: allow up to 15 minutes for the "listening" line.
for _ in $(seq 1 900); do
    grep -q 'listening on \[::\]:40007' "$log" && break
    kill -0 "$pid" 2>/dev/null || { wait "$pid" || true; fail "the program exited before listening"; }
    sleep 1
done
grep -q 'listening on \[::\]:40007' "$log" || { kill -INT "$pid"; fail "no 'listening on [::]:40007' line"; }
echo "try-readme: ok: $(grep -m1 'listening on' "$log")"

python3 - <<'PY' || { kill -INT "$pid"; fail "echo client"; }
import socket
for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect((host, 40007))
        message = ("hello from " + host).encode()
        s.sendall(message)
        s.shutdown(socket.SHUT_WR)
        echoed = b""
        while chunk := s.recv(4096):
            echoed += chunk
        assert echoed == message, (echoed, message)
        print("try-readme: ok: echo over", host)
PY

kill -INT "$pid"
status=0
wait "$pid" || status=$?
[ "$status" -eq 0 ] || fail "exit status $status after Ctrl-C"
grep -q 'counters: accepted 2, refused 0, active 0' "$log" || fail "counters missing or wrong"
grep -q 'leak report: empty' "$log" || fail "leak report not empty"
grep -q 'panicked' "$log" && fail "a panic was printed"
echo "try-readme: ok: $(grep -m1 'counters:' "$log")"
echo "try-readme: ok: $(grep -m1 'leak report' "$log"); exit status 0"
