#!/usr/bin/env python3
"""The Wine tier's server for report_client.sys, on 127.0.0.1 (loopback only).

Accepts the driver's connection, reads --first report lines and checks their sequence numbers grow,
then closes the connection (FIN); the driver must reconnect, and the next --then reports must go on
growing. It then writes "ok" to --status and keeps the connection open, reading, until the driver
closes it (its unload), and exits 0. Any other outcome, or a step that takes longer than --bound
seconds, writes "fail: WHY" to --status and exits 1.

A report line: `report SEQ connects=N reconnects=N sent=N failures=N`.
"""

import argparse
import socket
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--first", type=int, default=3)
    parser.add_argument("--then", type=int, default=2)
    parser.add_argument("--bound", type=float, default=30.0)
    parser.add_argument("--status", required=True)
    args = parser.parse_args()

    def status(text):
        with open(args.status, "w") as f:
            f.write(text + "\n")
        print(text, flush=True)

    def fail(why):
        status("fail: " + why)
        sys.exit(1)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(4)
    print(f"listening on 127.0.0.1:{args.port}", flush=True)

    def accept(what):
        listener.settimeout(args.bound)
        try:
            conn, peer = listener.accept()
        except socket.timeout:
            fail(f"no {what} within {args.bound} s")
        print(f"{what} from {peer[0]}:{peer[1]}", flush=True)
        conn.settimeout(args.bound)
        return conn

    last = [None]

    def read_reports(conn, count, what):
        """Reads `count` report lines; checks each sequence number is above the one before."""
        pending = b""
        got = 0
        while got < count:
            try:
                data = conn.recv(4096)
            except socket.timeout:
                fail(f"{what}: no report within {args.bound} s ({got} of {count})")
            except ConnectionError as e:
                fail(f"{what}: {e} after {got} of {count} reports")
            if not data:
                fail(f"{what}: the driver closed the connection after {got} of {count} reports")
            pending += data
            while b"\n" in pending and got < count:
                line, pending = pending.split(b"\n", 1)
                words = line.decode("ascii", "replace").split()
                if len(words) < 2 or words[0] != "report" or not words[1].isdigit():
                    fail(f"{what}: not a report line: {line!r}")
                seq = int(words[1])
                if last[0] is not None and seq <= last[0]:
                    fail(f"{what}: sequence {seq} after {last[0]}")
                last[0] = seq
                got += 1
                print(f"{what}: {line.decode('ascii', 'replace')}", flush=True)

    first = accept("connection 1")
    read_reports(first, args.first, "connection 1")
    first.shutdown(socket.SHUT_WR)
    first.close()
    print("closed connection 1 (FIN)", flush=True)

    second = accept("connection 2 (the reconnection)")
    read_reports(second, args.then, "connection 2")
    status("ok")

    # Until the driver's unload closes the connection (reports keep coming meanwhile).
    deadline = time.monotonic() + args.bound
    while True:
        second.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data = second.recv(4096)
        except socket.timeout:
            fail(f"the driver did not close connection 2 within {args.bound} s of the reports")
        except ConnectionError as e:
            print(f"connection 2 ended: {e}", flush=True)
            break
        if not data:
            print("connection 2 ended: FIN", flush=True)
            break
    print("done", flush=True)


if __name__ == "__main__":
    main()
