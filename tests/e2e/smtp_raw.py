#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""A raw SMTP client for end-to-end tests: it sends exactly the bytes it
is given, whenever it is told to, and reads the server's replies.  swaks
cannot send the odd sequences these tests need (RSET with an argument,
a refused EHLO in the middle of a transaction, DATA retried, BDAT
without CHUNKING, a pipelined envelope with the chunk in one write).

Run in the client's network namespace:

    smtp_raw.py HOST PORT SCRIPT.json

SCRIPT is a JSON list of steps:
    ["send", "text"]   write the bytes (the text is latin-1; write \\r\\n)
    ["replies", n]     read until n more complete replies have come
                       (a reply ends at a line "ddd text", not "ddd-")
    ["sleep", s]       wait s seconds
The first step is implicitly ["replies", 1] (the greeting).  Output on
stdout, one JSON object: {"replies": [[code, "last line"], ...],
"eof": true if the server closed the connection, "error": "..."}.
Reading gives up after 20 s without a byte (then "error" says so).
"""
import json
import socket
import sys
import time


def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(path) as f:
        steps = json.load(f)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(20)
    s.connect((host, port))
    out = {"replies": [], "eof": False}
    buf = b""

    def read_replies(n):
        nonlocal buf
        got = 0
        while got < n:
            while b"\n" not in buf:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    raise RuntimeError("timeout waiting for reply %d"
                                       % (len(out["replies"]) + 1))
                if not chunk:
                    out["eof"] = True
                    raise RuntimeError("connection closed by the server")
                buf += chunk
            line, _, buf = buf.partition(b"\n")
            line = line.rstrip(b"\r").decode("latin-1")
            if len(line) >= 3 and line[:3].isdigit() and \
               (len(line) == 3 or line[3] != "-"):
                out["replies"].append([int(line[:3]), line])
                got += 1

    try:
        read_replies(1)
        for step in steps:
            op, arg = step[0], step[1]
            if op == "send":
                s.sendall(arg.encode("latin-1"))
            elif op == "replies":
                read_replies(int(arg))
            elif op == "sleep":
                time.sleep(float(arg))
            else:
                raise RuntimeError("unknown step %r" % op)
        # Did the server hang up?  A short wait for EOF.
        s.settimeout(0.5)
        try:
            if s.recv(1) == b"":
                out["eof"] = True
        except (socket.timeout, OSError):
            pass
    except (RuntimeError, OSError) as e:
        out["error"] = str(e)
    finally:
        s.close()
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
