#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Frame injector for wirelab.py, run inside the lab's network namespace.

It owns the two outer ends of the lab's veth pairs (side 0: the Internet
side of backstop's inline pair, side 1: the protected side), writes the
frames it is given into one of them and reads, on both, what backstop
sent out.  Commands on stdin, one JSON object per line; one JSON answer
per command on stdout:

  {"op": "send", "side": S, "frame": HEX, "wait": bool}
        write the frame on side S; with wait, return once the same bytes
        came out of the other side (backstop forwarded it) or after 3 s
        -> {"ok": bool}
  {"op": "take"}
        every frame received since the last take, per side, in order
        -> {"frames": [[HEX...], [HEX...]]}
  {"op": "quiet", "ms": N}
        wait until no frame arrived on either side for N ms (at most 5 s)
        -> {"ok": true}

Only incoming frames count (the kernel loops our own writes back to the
packet socket as PACKET_OUTGOING).  Standard library only.
"""
import json
import socket
import sys
import threading
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def main():
    ifs = sys.argv[1:3]
    socks = []
    for name in ifs:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                          socket.htons(ETH_P_ALL))
        s.bind((name, 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        socks.append(s)
    lock = threading.Condition()
    got = [[], []]       # frames since the last take
    seen = [[], []]      # frames since the last send on the other side
    last = [time.monotonic()]

    def reader(i):
        s = socks[i]
        while True:
            data, addr = s.recvfrom(65535)
            if addr[2] == PACKET_OUTGOING:
                continue
            with lock:
                got[i].append(data)
                seen[i].append(data)
                last[0] = time.monotonic()
                lock.notify_all()

    for i in (0, 1):
        threading.Thread(target=reader, args=(i,), daemon=True).start()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "send":
            side = int(cmd["side"])
            frame = bytes.fromhex(cmd["frame"])
            other = 1 - side
            with lock:
                seen[other] = []
            socks[side].send(frame)
            ok = True
            if cmd.get("wait"):
                deadline = time.monotonic() + 3
                with lock:
                    while frame not in seen[other]:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            ok = False
                            break
                        lock.wait(left)
            out = {"ok": ok}
        elif op == "take":
            with lock:
                out = {"frames": [[f.hex() for f in got[0]],
                                  [f.hex() for f in got[1]]]}
                got[0], got[1] = [], []
        elif op == "quiet":
            ms = float(cmd.get("ms", 200)) / 1000
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                with lock:
                    idle = time.monotonic() - last[0]
                if idle >= ms:
                    break
                time.sleep(ms / 4)
            out = {"ok": True}
        else:
            out = {"error": "unknown op %r" % op}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
