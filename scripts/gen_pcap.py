#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Generate test, demo and benchmark captures for backstop.

Every capture comes with a manifest (JSON) that says, from the generator's
own knowledge, how many frames of each kind it wrote, so tests compare the
filter's counters with figures that do not come from the filter.

  gen_pcap.py mixed  OUT.pcap [--seed N] [--split A.pcap B.pcap]
  gen_pcap.py random OUT.pcap [--seed N] [--count N]
  gen_pcap.py bench  OUT.pcap [--seed N] [--flows N] [--packets N]
  gen_pcap.py link   OUT.pcap [--seed N] [--flows N] [--packets N]
                     [--smtp-share F] [--bounce-share F] [--messages DIR...]
  gen_pcap.py smtp   OUT.pcap [--seed N] [--messages DIR...] [--max N]
                     [--with-mixed]
  gen_pcap.py abort  OUT.pcap [--seed N] [--count N] [--complete]
  gen_pcap.py synflood OUT.pcap [--seed N] [--messages DIR...] [--max N]
                     [--syns N] [--before F]

mixed:  SMTP sessions (IPv4, IPv6, VLAN, QinQ, ports 25 and 587), other
        TCP, UDP, ICMP, ARP, IPv4 options, IPv6 extension headers,
        fragments, truncated and malformed frames, interleaved.
random: frames the tests never saw: random mutations of the above and
        random bytes (the seed is printed).
bench:  many concurrent flows, mixed sizes, ~1/3 SMTP.
link:   what an ISP link in front of mail servers carries, for the
        benchmarks (docs/performance.md): --flows concurrent flows
        (level when replayed in a loop), web, QUIC, DNS, ICMP, a quarter
        IPv6; SMTP about --smtp-share of the frames (sessions as an MX
        sees them: most refused or without a message, the rest ordinary
        mail of realistic sizes, a few with large attachments), a
        --bounce-share of the sessions carrying a corpus bounce; both
        directions interleaved in time order.  Raw frames, every checksum
        valid.
smtp:   one SMTP session per message file (LF converted to CRLF,
        dot-stuffed), as a mail gateway sees them.
abort:  SMTP sessions that end inside DATA (RST from either side, FIN,
        a cut in the header): bounces with Latin-1 and other legacy
        charset parts, plain mail with one, cut at varied points; with
        --complete the same sessions end their DATA properly instead.
synflood: the smtp mode's sessions with --syns spoofed SYNs to port 25
        woven in (random sources and ports, a fraction --before of them
        before the first session starts); the server answers about half
        of them with a SYN-ACK that nobody acknowledges.

--split writes client-to-server frames to A and the rest to B, for the
two-port inline test.  Uses Debian's python3-scapy.
"""
import argparse
import json
import os
import random
import socket
import struct
import sys

from scapy.all import (ARP, Dot1AD, Dot1Q, Ether, ICMP, IP, IPOption_RR,
                       IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                       IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, PcapWriter,
                       Raw, TCP, UDP, DNS, DNSQR, fragment, raw)

MSS = 1460


class Manifest:
    def __init__(self):
        self.c = {}

    def add(self, kind, n=1):
        self.c[kind] = self.c.get(kind, 0) + n


def ether(vlan):
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    if vlan == 1:
        return e / Dot1Q(vlan=100)
    if vlan == 2:
        return e / Dot1AD(vlan=200) / Dot1Q(vlan=100)
    return e


def iphdr(v6, src, dst, opts=False, ext=False):
    if v6:
        h = IPv6(src=src, dst=dst)
        if ext:
            h = h / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
        return h
    if opts:
        return IP(src=src, dst=dst, options=[IPOption_RR()])
    return IP(src=src, dst=dst)


class TcpConv:
    """A TCP conversation with correct sequence numbers in both directions."""

    def __init__(self, rnd, cli, srv, sport, dport, v6=False, vlan=0,
                 opts=False, ext=False, chaos=0):
        self.rnd = rnd
        # chaos > 0: data goes in random segments of 1..chaos bytes,
        # reordered within a small window, some sent twice (the same
        # bytes), as a hostile or unlucky network delivers them.
        self.chaos = chaos
        self.mss = MSS
        self.cli, self.srv, self.sport, self.dport = cli, srv, sport, dport
        self.v6, self.vlan, self.opts, self.ext = v6, vlan, opts, ext
        self.cseq = rnd.randrange(1 << 32)
        self.sseq = rnd.randrange(1 << 32)
        self.pkts = []  # (frame, from_client)

    def _pkt(self, from_cli, flags, payload=b""):
        src, dst = (self.cli, self.srv) if from_cli else (self.srv, self.cli)
        sp, dp = (self.sport, self.dport) if from_cli else (self.dport,
                                                             self.sport)
        seq = self.cseq if from_cli else self.sseq
        ack = self.sseq if from_cli else self.cseq
        t = TCP(sport=sp, dport=dp, flags=flags, seq=seq,
                ack=ack if "A" in flags else 0, window=65535)
        f = ether(self.vlan) / iphdr(self.v6, src, dst, self.opts,
                                     self.ext) / t
        if payload:
            f = f / Raw(payload)
        self.pkts.append((f, from_cli))
        adv = len(payload) + (1 if ("S" in flags or "F" in flags) else 0)
        if from_cli:
            self.cseq = (self.cseq + adv) & 0xffffffff
        else:
            self.sseq = (self.sseq + adv) & 0xffffffff

    def handshake(self):
        self._pkt(True, "S")
        self._pkt(False, "SA")
        self._pkt(True, "A")

    def send(self, from_cli, data):
        if not self.chaos:
            for i in range(0, len(data), self.mss):
                self._pkt(from_cli, "PA", data[i:i + self.mss])
            self._pkt(not from_cli, "A")
            return
        start = len(self.pkts)
        i = 0
        while i < len(data):
            n = self.rnd.randint(1, self.chaos)
            self._pkt(from_cli, "PA", data[i:i + n])
            i += n
        segs = self.pkts[start:]
        del self.pkts[start:]
        for j in range(len(segs) - 1):      # local reordering
            if self.rnd.random() < 0.3:
                segs[j], segs[j + 1] = segs[j + 1], segs[j]
        out = []
        for sg in segs:
            out.append(sg)
            if self.rnd.random() < 0.1:      # exact duplicate
                out.append(sg)
        self.pkts.extend(out)
        self._pkt(not from_cli, "A")

    def close(self):
        self._pkt(True, "FA")
        self._pkt(False, "FA")
        self._pkt(True, "A")

    def reset(self, from_cli):
        """An RST at the sender's next sequence number (exact: accepted)."""
        self._pkt(from_cli, "R")


def dot_stuff(msg):
    msg = msg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not msg.endswith(b"\r\n"):
        msg += b"\r\n"
    lines = msg.split(b"\r\n")
    return b"\r\n".join(b"." + l if l.startswith(b".") else l
                        for l in lines)


DEFAULT_MSG = (b"From: alice@example.org\r\nTo: bob@example.net\r\n"
               b"Subject: hello\r\nMessage-ID: <1@example.org>\r\n\r\n"
               b"Hello Bob,\r\n.leading dot line\r\nbye\r\n")


def smtp_session(conv, mail_from=b"alice@example.org",
                 rcpt=(b"bob@example.net",), msg=DEFAULT_MSG):
    conv.handshake()
    conv.send(False, b"220 mx.example.net ESMTP\r\n")
    conv.send(True, b"EHLO client.example.org\r\n")
    conv.send(False, b"250-mx.example.net\r\n250-PIPELINING\r\n"
              b"250-SIZE 10240000\r\n250 8BITMIME\r\n")
    conv.send(True, b"MAIL FROM:<" + mail_from + b">\r\n")
    conv.send(False, b"250 2.1.0 Ok\r\n")
    for r in rcpt:
        conv.send(True, b"RCPT TO:<" + r + b">\r\n")
        conv.send(False, b"250 2.1.5 Ok\r\n")
    conv.send(True, b"DATA\r\n")
    conv.send(False, b"354 End data with <CR><LF>.<CR><LF>\r\n")
    conv.send(True, dot_stuff(msg) + b".\r\n")
    conv.send(False, b"250 2.0.0 Ok: queued\r\n")
    conv.send(True, b"QUIT\r\n")
    conv.send(False, b"221 2.0.0 Bye\r\n")
    conv.close()


def interleave(rnd, convs):
    """Merge conversations, keeping each one's own order."""
    return interleave_lists(rnd, [c.pkts for c in convs])


def interleave_lists(rnd, lists):
    """Merge frame lists, keeping each list's own order."""
    queues = [list(x) for x in lists if x]
    out = []
    while queues:
        q = rnd.choice(queues)
        out.append(q.pop(0))
        if not q:
            queues.remove(q)
    return out


def gen_mixed(rnd, man):
    convs = []
    cases = [
        dict(v6=False, vlan=0, dport=25),
        dict(v6=False, vlan=1, dport=25),
        dict(v6=False, vlan=2, dport=587),
        dict(v6=True, vlan=0, dport=25),
        dict(v6=True, vlan=1, dport=587, ext=True),
        dict(v6=False, vlan=0, dport=25, opts=True),
    ]
    for i, c in enumerate(cases):
        v6 = c["v6"]
        cli = "2001:db8::%x" % (i + 10) if v6 else "192.0.2.%d" % (i + 10)
        srv = "2001:db8:1::25" if v6 else "198.51.100.25"
        conv = TcpConv(rnd, cli, srv, 40000 + i, c["dport"], v6=v6,
                       vlan=c["vlan"], opts=c.get("opts", False),
                       ext=c.get("ext", False))
        smtp_session(conv)
        convs.append(conv)
        man.add("smtp_sessions")
        man.add("smtp_packets", len(conv.pkts))
        man.add("pkt_tcp", len(conv.pkts))
        man.add("pkt_ipv6" if v6 else "pkt_ipv4", len(conv.pkts))
        if c["vlan"]:
            man.add("pkt_vlan", len(conv.pkts))
        if c.get("opts"):
            man.add("pkt_ipv4_options", len(conv.pkts))
        if c.get("ext"):
            man.add("pkt_ipv6_ext", len(conv.pkts))
    # Non-SMTP TCP (HTTP).
    web = TcpConv(rnd, "192.0.2.50", "198.51.100.80", 50000, 80)
    web.handshake()
    web.send(True, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    web.send(False, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    web.close()
    convs.append(web)
    man.add("pkt_tcp", len(web.pkts))
    man.add("pkt_ipv4", len(web.pkts))
    frames = [(f, c) for f, c in interleave(rnd, convs)]

    def extra(f, kind, cli=True, **more):
        frames.insert(rnd.randrange(len(frames) + 1), (f, cli))
        man.add(kind)
        for k, v in more.items():
            man.add(k, v)

    e = ether(0)
    extra(e / IP(src="192.0.2.7", dst="198.51.100.53") / UDP(sport=5353,
          dport=53) / DNS(qd=DNSQR(qname="example.org")), "pkt_udp",
          pkt_ipv4=1)
    extra(e / IPv6(src="2001:db8::7", dst="2001:db8::53") / UDP(dport=53) /
          Raw(b"q"), "pkt_udp", pkt_ipv6=1)
    extra(e / IP(src="192.0.2.7", dst="198.51.100.1") / ICMP(), "pkt_other_l4",
          pkt_ipv4=1)
    extra(e / ARP(psrc="192.0.2.7", pdst="192.0.2.1"), "pkt_non_ip")
    extra(ether(1) / ARP(), "pkt_non_ip", pkt_vlan=1)
    # Fragments of an SMTP-port segment: passed, not tracked.
    big = IP(src="192.0.2.8", dst="198.51.100.25", id=7) / TCP(
        sport=40100, dport=25, flags="PA") / Raw(b"X" * 3000)
    for fr in fragment(big, fragsize=1000):
        extra(e / fr, "pkt_fragment", pkt_ipv4=1)
    f6 = IPv6(src="2001:db8::8", dst="2001:db8:1::25") / IPv6ExtHdrFragment(
        offset=0, m=1, id=9) / Raw(b"Y" * 64)
    extra(e / f6, "pkt_fragment", pkt_ipv6=1, pkt_ipv6_ext=1)
    # IPv6 routing header + TCP on a non-SMTP port.
    extra(e / IPv6(src="2001:db8::9", dst="2001:db8::1") /
          IPv6ExtHdrRouting() / TCP(sport=1, dport=443, flags="S"),
          "pkt_tcp", pkt_ipv6=1, pkt_ipv6_ext=1)
    # Truncated: IP header says longer than captured.
    t = raw(e / IP(src="192.0.2.9", dst="198.51.100.25") / TCP(dport=25) /
            Raw(b"Z" * 100))
    extra(Raw(t[:60]), "pkt_truncated", pkt_ipv4=1)
    extra(Raw(raw(e)[:10]), "pkt_truncated")  # runt
    # TCP header cut.
    t2 = raw(e / IP(src="192.0.2.9", dst="198.51.100.25", len=24) /
             TCP(dport=25))
    extra(Raw(t2[:38]), "pkt_truncated", pkt_ipv4=1)
    # Malformed: IHL < 5; TCP data offset < 5; IPv6 version mismatch.
    m1 = bytearray(raw(e / IP(src="192.0.2.9", dst="198.51.100.25") /
                       TCP(dport=25)))
    m1[14] = 0x43
    extra(Raw(bytes(m1)), "pkt_malformed")
    m2 = bytearray(raw(e / IP(src="192.0.2.9", dst="198.51.100.25") /
                       TCP(dport=25)))
    m2[14 + 20 + 12] = 0x30
    extra(Raw(bytes(m2)), "pkt_malformed", pkt_ipv4=1)
    m3 = bytearray(raw(e / IPv6(src="2001:db8::9", dst="2001:db8::1") /
                       TCP(dport=25)))
    m3[14] = 0x40
    extra(Raw(bytes(m3)), "pkt_malformed")
    return frames


def gen_random(rnd, man, count):
    base = gen_mixed(rnd, Manifest())
    frames = []
    for _ in range(count):
        r = rnd.random()
        if r < 0.4:
            f, c = rnd.choice(base)
            b = bytearray(raw(f))
            for _ in range(rnd.randrange(1, 6)):
                b[rnd.randrange(len(b))] = rnd.randrange(256)
            if rnd.random() < 0.3:
                b = b[:rnd.randrange(1, len(b) + 1)]
            frames.append((Raw(bytes(b)),
                           c))
        elif r < 0.6:
            n = rnd.randrange(1, 1515)
            frames.append((Raw(bytes(rnd.randrange(256) for _ in range(n))),
                           True))
        else:
            frames.append(rnd.choice(base))
    man.add("frames", len(frames))
    return frames


def gen_bench(rnd, man, nflows, npackets):
    convs = []
    total = 0
    i = 0
    while total < npackets:
        kind = rnd.random()
        cli = "10.%d.%d.%d" % (1 + i // 65536 % 200, i // 256 % 256, i % 256)
        srv = "172.16.%d.%d" % (i // 250 % 250, 1 + i % 250)
        if kind < 0.33:
            conv = TcpConv(rnd, cli, srv, 1024 + i % 60000, 25)
            body = DEFAULT_MSG + b"x" * rnd.choice((200, 2000, 20000))
            smtp_session(conv, msg=body)
        else:
            conv = TcpConv(rnd, cli, srv, 1024 + i % 60000,
                           rnd.choice((80, 443, 8080)))
            conv.handshake()
            for _ in range(rnd.randrange(1, 8)):
                conv.send(True, b"q" * rnd.choice((64, 300)))
                conv.send(False, b"r" * rnd.choice((100, 1400, 9000)))
            conv.close()
        convs.append(conv)
        total += len(conv.pkts)
        i += 1
    # Keep about nflows conversations open at once.
    frames = []
    active = []
    pending = list(convs)
    while pending or active:
        while pending and len(active) < nflows:
            active.append(list(pending.pop(0).pkts))
        q = rnd.choice(active)
        frames.append(q.pop(0))
        if not q:
            active.remove(q)
    man.add("frames", len(frames))
    man.add("conversations", len(convs))
    return frames


def gen_smtp(rnd, man, paths, maxn, chaos=0, same_port=False, mss=MSS):
    """One session per message; at most maxn from each path given."""
    files = []
    for p in paths:
        if os.path.isdir(p):
            here = sorted(os.path.join(p, f) for f in os.listdir(p)
                          if os.path.isfile(os.path.join(p, f)) and
                          not f.startswith(("LICENSE", "README")))
            files += here[:maxn] if maxn else here
        else:
            files.append(p)
    convs = []
    for i, fn in enumerate(files):
        with open(fn, "rb") as fh:
            msg = fh.read()
        if same_port:  # one after another, reusing one 4-tuple
            conv = TcpConv(rnd, "203.0.113.1", "198.51.100.25", 30000, 25,
                           chaos=chaos)
        else:
            conv = TcpConv(rnd, "203.0.113.%d" % (1 + i % 250),
                           "198.51.100.25", 30000 + i, 25, chaos=chaos)
        conv.mss = mss
        # Bounces come with the null reverse path (RFC 5321 4.5.5).
        bounce = "/ndr/" in fn or "/autoreply/" in fn
        smtp_session(conv, mail_from=b"" if bounce else b"sender@example.org",
                     rcpt=(b"user@example.net",), msg=msg)
        convs.append(conv)
        man.add("smtp_sessions")
        man.add("smtp_packets", len(conv.pkts))
    man.add("messages", len(files))
    if same_port:
        return [p for c in convs for p in c.pkts]
    return interleave(rnd, convs)


ABORT_TEXT = ("Votre message n'a pas pu \u00eatre d\u00e9livr\u00e9 \u00e0 "
              "l'adresse \u00ab user@example.net \u00bb : bo\u00eete "
              "pleine.\nDie Nachricht konnte nicht zugestellt werden: "
              "Empf\u00e4nger unbekannt (Gr\u00fc\u00dfe).\n")


def _part_body(text, charset, cte):
    import base64
    import quopri
    raw = text.encode(charset, errors="replace")
    if cte == "base64":
        b = base64.encodebytes(raw)
    elif cte == "quoted-printable":
        b = quopri.encodestring(raw)
    else:
        b = raw
    return b.replace(b"\r\n", b"\n")


def abort_message(kind, rnd):
    """One message of the abort mode, LF line ends; returns (bytes,
    mail_from, offset of the cut: inside a legacy-charset text part, or
    inside the top-level header for kind 'hdr')."""
    text = ABORT_TEXT * rnd.randint(5, 30)
    orig = (b"Received: from client.example.org (client.example.org "
            b"[192.0.2.9])\n\tby mx.example.org with ESMTP; Mon, 1 Jan 2024 "
            b"00:00:00 +0000\nMessage-ID: <o%d@example.org>\n"
            b"From: alice@example.org\nTo: user@example.net\n"
            b"Subject: hello\n\nbody\n" % rnd.randrange(1 << 30))
    if kind in ("report", "hdr"):
        cs, cte = rnd.choice((("iso-8859-1", "8bit"),
                              ("ISO-8859-1", "quoted-printable"),
                              ("windows-1252", "base64")))
        head = (b"Return-Path: <>\nFrom: Mail Delivery System "
                b"<MAILER-DAEMON@mx.example.net>\nTo: alice@example.org\n"
                b"Subject: Undelivered Mail Returned to Sender\n"
                b"Auto-Submitted: auto-replied\nMIME-Version: 1.0\n"
                b"Content-Type: multipart/report; report-type=delivery-"
                b"status;\n boundary=\"b1\"\n\n")
        part = (b"--b1\nContent-Type: text/plain; charset=%s\n"
                b"Content-Transfer-Encoding: %s\n\n" % (cs.encode(),
                                                        cte.encode()))
        body = _part_body(text, cs, cte)
        tail = (b"\n--b1\nContent-Type: message/delivery-status\n\n"
                b"Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: "
                b"rfc822; user@example.net\nAction: failed\nStatus: 5.2.2\n"
                b"\n--b1\nContent-Type: message/rfc822\n\n" + orig +
                b"\n--b1--\n")
        msg = head + part + body + tail
        if kind == "hdr":
            cut = rnd.randrange(20, len(head) - 2)
        else:
            cut = len(head) + len(part) + rnd.randrange(1, len(body))
        return msg, b"", cut
    if kind == "single":
        cs = rnd.choice(("iso-8859-15", "iso-8859-2", "windows-1250"))
        head = (b"From: MAILER-DAEMON@mx.example.net\nTo: alice@example.org"
                b"\nSubject: failure notice\nMIME-Version: 1.0\n"
                b"Content-Type: text/plain; charset=%s\n"
                b"Content-Transfer-Encoding: quoted-printable\n\n" %
                cs.encode())
        body = _part_body(text, cs, "quoted-printable")
        msg = head + body + b"\n--- Below this line is a copy of the " \
            b"message.\n\n" + orig
        return msg, b"", len(head) + rnd.randrange(1, len(body))
    if kind == "charsets":
        # Several legacy charsets in one message: fills the per-thread
        # converter cache; the cut falls in one of the parts.
        head = (b"Return-Path: <>\nFrom: postmaster@mx.example.net\n"
                b"Subject: Delivery Status Notification (Failure)\n"
                b"Content-Type: multipart/mixed; boundary=\"c\"\n\n")
        parts = []
        for cs, cte in (("koi8-r", "8bit"), ("iso-2022-jp", "7bit"),
                        ("shift_jis", "base64"), ("iso-8859-9", "8bit"),
                        ("gb2312", "base64"), ("iso-8859-7", "8bit"),
                        ("windows-1251", "quoted-printable"),
                        ("iso-8859-1", "8bit"), ("big5", "base64")):
            t = text if cs.startswith(("iso-8859", "windows")) else \
                "\u914d\u4fe1\u3067\u304d\u307e\u305b\u3093 user\n" * 40
            if cs in ("koi8-r", "windows-1251"):
                t = "\u0421\u043e\u043e\u0431\u0449\u0435\u043d\u0438\u0435 "\
                    "\u043d\u0435 \u0434\u043e\u0441\u0442\u0430\u0432\u043b"\
                    "\u0435\u043d\u043e\n" * 40
            if cs == "iso-8859-7":
                t = "\u03a4\u03bf \u03bc\u03ae\u03bd\u03c5\u03bc\u03b1\n" * 40
            if cs in ("gb2312", "big5"):
                t = "\u6295\u9012\u5931\u8d25 user\n" * 40 if cs == "gb2312" \
                    else "\u6295\u905e\u5931\u6557 user\n" * 40
            parts.append(b"--c\nContent-Type: text/plain; charset=%s\n"
                         b"Content-Transfer-Encoding: %s\n\n" %
                         (cs.encode(), cte.encode()) +
                         _part_body(t, cs, cte) + b"\n")
        msg = head + b"".join(parts) + b"--c--\n"
        k = rnd.randrange(len(parts))
        cut = len(head) + sum(len(x) for x in parts[:k]) + \
            rnd.randrange(len(parts[k]) // 2, len(parts[k]))
        return msg, b"", cut
    if kind == "plain":
        # Ordinary mail (not a bounce candidate) with a Latin-1 part.
        head = (b"From: Bob <bob@example.com>\nTo: user@example.net\n"
                b"Subject: Re: r\xe9union\nMIME-Version: 1.0\n"
                b"Content-Type: text/plain; charset=iso-8859-1\n"
                b"Content-Transfer-Encoding: 8bit\n\n")
        body = _part_body(text, "iso-8859-1", "8bit")
        return head + body, b"bob@example.com", \
            len(head) + rnd.randrange(1, len(body))
    # "autohdr": a candidate by its header only (sender not null).
    head = (b"From: Mail Delivery Subsystem <mailer-daemon@mx.example.net>"
            b"\nAuto-Submitted: auto-generated\nSubject: Delivery failure\n"
            b"Content-Type: multipart/alternative; boundary=a\n\n"
            b"--a\nContent-Type: text/plain; charset=latin1\n\n")
    body = _part_body(text, "latin-1", "8bit")
    return head + body + b"\n--a--\n", b"bounce+x@mx.example.net", \
        len(head) + rnd.randrange(1, len(body))


ABORT_KINDS = ("report", "single", "charsets", "plain", "autohdr", "hdr")
ABORT_ENDS = ("client_rst", "server_rst", "client_fin")


def gen_abort(rnd, man, count, complete):
    """count sessions, each cut inside DATA and ended by an RST (either
    side) or the client's FIN; complete: the same messages sent whole."""
    convs = []
    for i in range(count):
        kind = ABORT_KINDS[i % len(ABORT_KINDS)]
        end = ABORT_ENDS[(i // len(ABORT_KINDS)) % len(ABORT_ENDS)]
        msg, mail_from, cut = abort_message(kind, rnd)
        conv = TcpConv(rnd, "203.0.113.%d" % (1 + i % 250), "198.51.100.25",
                       20000 + i, 25)
        conv.handshake()
        conv.send(False, b"220 mx.example.net ESMTP\r\n")
        conv.send(True, b"EHLO client.example.org\r\n")
        conv.send(False, b"250-mx.example.net\r\n250 8BITMIME\r\n")
        conv.send(True, b"MAIL FROM:<" + mail_from + b">\r\n")
        conv.send(False, b"250 2.1.0 Ok\r\n")
        conv.send(True, b"RCPT TO:<user@example.net>\r\n")
        conv.send(False, b"250 2.1.5 Ok\r\n")
        conv.send(True, b"DATA\r\n")
        conv.send(False, b"354 End data with <CR><LF>.<CR><LF>\r\n")
        data = dot_stuff(msg)
        if complete:
            conv.send(True, data + b".\r\n")
            conv.send(False, b"250 2.0.0 Ok: queued\r\n")
            conv.send(True, b"QUIT\r\n")
            conv.send(False, b"221 2.0.0 Bye\r\n")
            conv.close()
            man.add("sessions_complete")
        else:
            # The cut is an offset into the LF message; CRLF and dot
            # stuffing move it, so take the same share of the wire bytes.
            wcut = max(1, cut * len(data) // len(msg))
            conv.send(True, data[:wcut])
            if end == "client_fin":
                conv.close()
            else:
                conv.reset(end == "client_rst")
            man.add("sessions_" + end)
        man.add("kind_" + kind)
        man.add("smtp_sessions")
        man.add("smtp_packets", len(conv.pkts))
        convs.append(conv)
    return interleave(rnd, convs)
def gen_synflood(rnd, man, paths, maxn, nsyn, before):
    """Real sessions under a SYN flood (see the module docstring)."""
    sessions = gen_smtp(rnd, man, paths, maxn)
    flood = []
    for i in range(nsyn):
        src = "%d.%d.%d.%d" % (rnd.randrange(1, 224), rnd.randrange(256),
                               rnd.randrange(256), rnd.randrange(1, 255))
        sport = rnd.randrange(1024, 65536)
        isn = rnd.randrange(1 << 32)
        e = ether(0)
        flood.append((e / IP(src=src, dst="198.51.100.25") /
                      TCP(sport=sport, dport=25, flags="S", seq=isn,
                          window=29200), True))
        if rnd.random() < 0.5:
            flood.append((e / IP(src="198.51.100.25", dst=src) /
                          TCP(sport=25, dport=sport, flags="SA",
                              seq=rnd.randrange(1 << 32),
                              ack=(isn + 1) & 0xffffffff, window=65160),
                          False))
            man.add("flood_synacks")
    man.add("flood_syns", nsyn)
    # SYN-ACKs stay right behind their SYNs; split at a SYN.
    cut = int(len(flood) * before)
    while cut < len(flood) and "A" in str(flood[cut][0]["TCP"].flags):
        cut += 1
    return flood[:cut] + interleave_lists(rnd, [sessions, flood[cut:]])


# ---- link: a capture that looks like an ISP link (raw frames, fast) ----
#
# Built with struct rather than scapy: a realistic capture has hundreds of
# thousands of frames, and scapy needs minutes for that.  Every checksum
# (IPv4 header, TCP, UDP, ICMP) is computed, so backstop believes each
# segment as a server would.

def _csum(b):
    """Internet checksum of b, as the two bytes to store (network order).
    Summing little-endian words and storing the result little-endian
    gives the big-endian checksum (RFC 1071 byte-order independence)."""
    if len(b) & 1:
        b += b"\0"
    s = sum(memoryview(b).cast("H"))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return struct.pack("<H", ~s & 0xffff)


def _addr(a):
    return socket.inet_pton(socket.AF_INET6 if ":" in a else socket.AF_INET, a)


class RawFlow:
    """One conversation (TCP, UDP or ICMP) as raw frames with times.

    Times are in units of the capture's period T (see gen_link): the
    frames of a flow are spread over [start, start + dur) in order."""

    ETH_V4 = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    ETH_V6 = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x86\xdd"
    ETH_V4R = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
    ETH_V6R = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x86\xdd"

    def __init__(self, rnd, cli, srv, sport, dport, mss=MSS):
        self.rnd = rnd
        self.v6 = ":" in cli
        self.c, self.s = _addr(cli), _addr(srv)
        self.sport, self.dport = sport, dport
        self.cseq = rnd.randrange(1 << 32)
        self.sseq = rnd.randrange(1 << 32)
        self.mss = mss - (20 if self.v6 else 0)
        self.ident = rnd.randrange(1 << 16)
        self.frames = []  # (bytes, from_client, gap weight)
        self.unacked = [0, 0]  # full segments not yet acked, per sender

    def _ip(self, from_cli, proto, l4):
        src, dst = (self.c, self.s) if from_cli else (self.s, self.c)
        if self.v6:
            h = struct.pack("!IHBB", 0x60000000, len(l4), proto, 64) + src + dst
            eth = self.ETH_V6 if from_cli else self.ETH_V6R
            return eth + h, src, dst
        self.ident = (self.ident + 1) & 0xffff
        h = bytearray(struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(l4),
                                  self.ident, 0x4000, 64, proto, 0) + src + dst)
        h[10:12] = _csum(bytes(h))
        eth = self.ETH_V4 if from_cli else self.ETH_V4R
        return eth + bytes(h), src, dst

    def _pseudo(self, src, dst, proto, n):
        if self.v6:
            return src + dst + struct.pack("!IxxxB", n, proto)
        return src + dst + struct.pack("!xBH", proto, n)

    def tcp(self, from_cli, flags, payload=b"", gap=1.0, opts=b""):
        sp, dp = (self.sport, self.dport) if from_cli else (self.dport,
                                                             self.sport)
        seq, ack = (self.cseq, self.sseq) if from_cli else (self.sseq,
                                                             self.cseq)
        fl = 0
        for ch, bit in (("F", 1), ("S", 2), ("R", 4), ("P", 8), ("A", 16)):
            if ch in flags:
                fl |= bit
        hl = 20 + len(opts)
        t = bytearray(struct.pack("!HHIIBBHHH", sp, dp, seq,
                                  ack if fl & 16 else 0, (hl // 4) << 4, fl,
                                  65535 if not self.v6 else 64800, 0, 0) +
                      opts + payload)
        hdr, src, dst = self._ip(from_cli, 6, t)
        t[16:18] = _csum(self._pseudo(src, dst, 6, len(t)) + bytes(t))
        self.frames.append((hdr + bytes(t), from_cli, gap))
        adv = len(payload) + (1 if fl & 3 else 0)
        if from_cli:
            self.cseq = (self.cseq + adv) & 0xffffffff
        else:
            self.sseq = (self.sseq + adv) & 0xffffffff

    def udp(self, from_cli, payload, gap=1.0):
        sp, dp = (self.sport, self.dport) if from_cli else (self.dport,
                                                             self.sport)
        u = bytearray(struct.pack("!HHHH", sp, dp, 8 + len(payload), 0) +
                      payload)
        hdr, src, dst = self._ip(from_cli, 17, u)
        c = _csum(self._pseudo(src, dst, 17, len(u)) + bytes(u))
        u[6:8] = c if c != b"\0\0" else b"\xff\xff"
        self.frames.append((hdr + bytes(u), from_cli, gap))

    def icmp_echo(self, from_cli, n, gap=1.0):
        body = bytes(self.rnd.randrange(256) for _ in range(n))
        if self.v6:
            m = bytearray(struct.pack("!BBHHH", 128 if from_cli else 129, 0, 0,
                                      7, 1) + body)
            hdr, src, dst = self._ip(from_cli, 58, m)
            m[2:4] = _csum(self._pseudo(src, dst, 58, len(m)) + bytes(m))
        else:
            m = bytearray(struct.pack("!BBHHH", 8 if from_cli else 0, 0, 0, 7,
                                      1) + body)
            m[2:4] = _csum(bytes(m))
            hdr, _, _ = self._ip(from_cli, 1, m)
        self.frames.append((hdr + bytes(m), from_cli, gap))

    def handshake(self):
        # MSS, SACK-permitted, window scale: what Linux offers.
        o = struct.pack("!BBH", 2, 4, self.mss) + b"\x04\x02\x01\x03\x03\x07"
        self.tcp(True, "S", opts=o + b"\x01\x01", gap=1.0)
        self.tcp(False, "SA", opts=o + b"\x01\x01", gap=2.0)
        self.tcp(True, "A", gap=2.0)

    def send(self, from_cli, data, gap=2.0):
        """data in MSS segments; the receiver acks every second full
        segment (delayed ACK) and the last one."""
        first = True
        for i in range(0, len(data), self.mss):
            seg = data[i:i + self.mss]
            last = i + self.mss >= len(data)
            self.tcp(from_cli, "PA" if last else "A", seg,
                     gap=gap if first else 0.05)
            first = False
            k = 0 if from_cli else 1
            self.unacked[k] += 1
            if self.unacked[k] >= 2 or last:
                self.tcp(not from_cli, "A", gap=0.3)
                self.unacked[k] = 0
        if not data:
            return

    def close(self):
        self.tcp(True, "FA", gap=2.0)
        self.tcp(False, "FA", gap=2.0)
        self.tcp(True, "A", gap=2.0)


def _html(rnd, n):
    words = ("the", "order", "meeting", "invoice", "report", "please",
             "attached", "project", "update", "regards", "customer", "team",
             "schedule", "review", "account", "delivery", "thanks", "week")
    out = [b"<html><body>\n"]
    size = 14
    while size < n:
        line = b"<p>" + b" ".join(rnd.choice(words).encode()
                                   for _ in range(12)) + b"</p>\n"
        out.append(line)
        size += len(line)
    out.append(b"</body></html>\n")
    return b"".join(out)


def _b64(rnd, n):
    import base64
    return base64.encodebytes(rnd.randbytes(n)).replace(b"\n", b"\r\n")


def link_message(rnd, base, size):
    """An ordinary message of about size bytes: base's header lines
    (From, To, Subject, Date, Message-ID), its text, an HTML alternative
    and, past 30 KB, an attachment of the rest (base64)."""
    head, _, body = base.replace(b"\r\n", b"\n").partition(b"\n\n")
    keep = []
    for line in head.split(b"\n"):
        n = line.split(b":", 1)[0].lower()
        if n in (b"from", b"to", b"subject", b"date", b"message-id", b"cc"):
            keep.append(line)
    text = body[:4000] if body.strip() else b"Hello,\n\nsee below.\n"
    if b"Content-Transfer-Encoding" in head or b"=?" in text:
        text = b"Hello,\n\nplease find the details below.\n\nRegards\n"
    hdr = b"\n".join(keep) + b"\nMIME-Version: 1.0\n"
    html_n = max(200, min(size, 30000) - len(text) - 600)
    alt = (b"--alt\nContent-Type: text/plain; charset=us-ascii\n\n" + text +
           b"\n--alt\nContent-Type: text/html; charset=us-ascii\n\n" +
           _html(rnd, html_n) + b"--alt--\n")
    att_n = size - len(hdr) - len(alt) - 400
    if att_n < 20000:
        return hdr + b"Content-Type: multipart/alternative; boundary=alt\n\n" \
            + alt
    raw_n = att_n * 3 // 4
    return (hdr + b"Content-Type: multipart/mixed; boundary=mix\n\n--mix\n"
            b"Content-Type: multipart/alternative; boundary=alt\n\n" + alt +
            b"\n--mix\nContent-Type: application/pdf; name=doc.pdf\n"
            b"Content-Disposition: attachment; filename=doc.pdf\n"
            b"Content-Transfer-Encoding: base64\n\n" +
            _b64(rnd, raw_n).replace(b"\r\n", b"\n") + b"\n--mix--\n")


def link_size(rnd):
    """Message sizes of ordinary mail: mostly a few KB to tens of KB, a
    quarter with a document attached, a few per cent with a large one."""
    r = rnd.random()
    if r < 0.68:
        return int(rnd.lognormvariate(9.3, 0.7))          # ~11 KB median
    if r < 0.96:
        return int(rnd.uniform(40e3, 400e3))
    return int(rnd.uniform(0.8e6, 3e6))


def link_smtp(flow, rnd, mail_from, rcpts, msg, kind="deliver"):
    """An MTA-to-MTA session as Postfix runs one (PIPELINING: MAIL, RCPT
    and DATA in one write, one reply per command).  kind: "deliver" (the
    message is sent and queued), "reject" (every recipient refused, as
    for unknown users or greylisting: no message), "probe" (EHLO and
    QUIT only)."""
    f = flow
    f.handshake()
    f.send(False, b"220 mx.example.net ESMTP Postfix\r\n", gap=3.0)
    f.send(True, b"EHLO mail%d.example.org\r\n" % rnd.randrange(100))
    f.send(False, b"250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE "
           b"52428800\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
           b"250 DSN\r\n")
    if kind != "probe":
        cmds = b"MAIL FROM:<" + mail_from + b"> SIZE=%d\r\n" % len(msg)
        for r in rcpts:
            cmds += b"RCPT TO:<" + r + b">\r\n"
        f.send(True, cmds + b"DATA\r\n")
        rep = b"250 2.1.0 Ok\r\n"
        if kind == "reject":
            code = rnd.choice((b"550 5.1.1", b"450 4.2.0"))
            for r in rcpts:
                rep += code + b" <" + r + b">: Recipient address rejected\r\n"
            f.send(False, rep + b"554 5.5.1 Error: no valid recipients\r\n")
        else:
            for r in rcpts:
                rep += b"250 2.1.5 Ok\r\n"
            f.send(False, rep + b"354 End data with <CR><LF>.<CR><LF>\r\n")
            f.send(True, dot_stuff(msg) + b".\r\n")
            f.send(False, b"250 2.0.0 Ok: queued as %X\r\n" %
                   rnd.randrange(1 << 40), gap=4.0)
    f.send(True, b"QUIT\r\n")
    f.send(False, b"221 2.0.0 Bye\r\n")
    f.close()


def _corpus_files(paths):
    files = []
    for p in paths:
        if os.path.isdir(p):
            for d, _, names in sorted(os.walk(p)):
                files += sorted(os.path.join(d, x) for x in names
                                if not x.startswith(("LICENSE", "README")))
        elif os.path.isfile(p):
            files.append(p)
    return files


def gen_link(rnd, man, npackets, nconc, smtp_share, bounce_share, paths):
    """An ISP link's mix (docs/performance.md describes it): web and other
    TCP, DNS and QUIC over UDP, ICMP, a quarter IPv6; SMTP sessions make
    about smtp_share of the frames, bounce_share of them carry a real
    bounce (null sender) from the corpus, the others ordinary mail of
    realistic sizes built around corpus messages.  Each flow's frames are
    spread over a random window of the capture's period and the period
    wraps, so when the capture is replayed in a loop the number of open
    flows stays level (about nconc) and every flow continues across the
    wrap; both directions are interleaved as on a wire."""
    files = _corpus_files(paths)
    bounces = [x for x in files if "/ndr/" in x]
    plain = [x for x in files if "/not-ndr/" in x] or \
        [x for x in files if x not in bounces]
    flows = []
    n_smtp = n_other = 0
    seq = 0

    def endpoints(v6):
        nonlocal seq
        seq += 1
        if v6:
            return ("2001:db8:%x:%x::%x" % (seq >> 16 & 0xffff, seq & 0xffff,
                                            rnd.randrange(1, 1 << 16)),
                    "2001:db8:ffff:%x::%x" % (rnd.randrange(4096),
                                               rnd.randrange(1, 4096)))
        return ("10.%d.%d.%d" % (seq >> 16 & 0xff, seq >> 8 & 0xff,
                                 1 + seq % 254),
                "172.%d.%d.%d" % (16 + rnd.randrange(16), rnd.randrange(256),
                                  1 + rnd.randrange(254)))

    sessions = bounces_n = msg_bytes = 0
    while n_smtp + n_other < npackets:
        want_smtp = n_smtp < smtp_share * (n_smtp + n_other + 1)
        v6 = rnd.random() < 0.25
        cli, srv = endpoints(v6)
        sport = rnd.randrange(32768, 61000)
        if want_smtp and (plain or bounces):
            # Inbound mail to the protected domain's four MX hosts.
            mx = ("2001:db8:25::%d" if v6 else "198.51.100.%d") % \
                rnd.randint(25, 28)
            f = RawFlow(rnd, cli, mx, sport, 25)
            r = rnd.random()
            if bounces and (not plain or r < bounce_share):
                with open(rnd.choice(bounces), "rb") as fh:
                    msg = fh.read()
                mail_from, kind = b"", "deliver"
                bounces_n += 1
            else:
                with open(rnd.choice(plain), "rb") as fh:
                    base = fh.read()
                msg = link_message(rnd, base, link_size(rnd))
                mail_from = b"user%d@example.org" % rnd.randrange(10000)
                # Most sessions a busy MX sees never carry a message:
                # unknown users, greylisting, probes.
                k = rnd.random()
                kind = "deliver" if k < 0.4 else \
                    "reject" if k < 0.85 else "probe"
            nr = 1 if rnd.random() < 0.8 else rnd.randint(2, 5)
            link_smtp(f, rnd, mail_from,
                      [b"rcpt%d@example.net" % rnd.randrange(10000)
                       for _ in range(nr)], msg, kind)
            sessions += 1
            man.add("smtp_sessions_" + kind)
            if kind == "deliver":
                msg_bytes += len(msg)
                man.add("smtp_messages")
            n_smtp += len(f.frames)
            f.kind = "smtp"
        else:
            r = rnd.random()
            if r < 0.45:        # HTTPS / HTTP: requests, bulk responses
                f = RawFlow(rnd, cli, srv, sport,
                            rnd.choice((443, 443, 443, 80, 8080)))
                f.handshake()
                for _ in range(rnd.randint(1, 6)):
                    f.send(True, rnd.randbytes(rnd.choice((90, 400, 700))))
                    n = int(rnd.lognormvariate(8.0, 1.6))
                    f.send(False, rnd.randbytes(min(n, 2000000)))
                f.close()
                f.kind = "tcp"
            elif r < 0.55:      # interactive / small TCP (ssh, imaps, ...)
                f = RawFlow(rnd, cli, srv, sport,
                            rnd.choice((22, 993, 5222, 3389)))
                f.handshake()
                for _ in range(rnd.randint(3, 20)):
                    f.send(rnd.random() < 0.5,
                           rnd.randbytes(rnd.randint(40, 300)))
                f.close()
                f.kind = "tcp"
            elif r < 0.85:      # DNS
                f = RawFlow(rnd, cli, srv, sport, 53)
                for _ in range(rnd.randint(1, 3)):
                    f.udp(True, rnd.randbytes(rnd.randint(30, 60)))
                    f.udp(False, rnd.randbytes(rnd.randint(60, 480)),
                          gap=2.0)
                f.kind = "udp"
            elif r < 0.98:      # QUIC
                f = RawFlow(rnd, cli, srv, sport, 443)
                f.udp(True, rnd.randbytes(1200))
                for _ in range(rnd.randint(4, 60)):
                    f.udp(False, rnd.randbytes(rnd.choice((1232, 1350, 1200,
                                                           80))), gap=0.1)
                    if rnd.random() < 0.3:
                        f.udp(True, rnd.randbytes(40), gap=0.3)
                f.kind = "udp"
            else:               # ping
                f = RawFlow(rnd, cli, srv, 0, 0)
                for _ in range(rnd.randint(1, 5)):
                    f.icmp_echo(True, 56)
                    f.icmp_echo(False, 56, gap=2.0)
                f.kind = "icmp"
            n_other += len(f.frames)
        flows.append(f)
    # Timeline: period 1.0.  A flow lasts a random share of the period
    # (long enough that about nconc overlap), its frames placed in order
    # by their gap weights.
    total_w = 0.0
    out = []
    mean_dur = min(0.9, nconc / max(1, len(flows)))
    for f in flows:
        dur = min(0.95, rnd.uniform(0.2, 1.8) * mean_dur)
        start = rnd.random()
        w = [g for _, _, g in f.frames]
        tw = sum(w) or 1.0
        t = 0.0
        for (b, c, g) in f.frames:
            t += g
            out.append(((start + dur * t / (tw + 1.0)) % 1.0, b, c))
        total_w += dur
        man.add("flows_" + f.kind)
    out.sort(key=lambda x: x[0])
    man.add("smtp_sessions", sessions)
    man.add("smtp_bounces", bounces_n)
    man.add("smtp_message_bytes", msg_bytes)
    man.add("smtp_packets", n_smtp)
    man.add("frames", len(out))
    man.add("frame_bytes", sum(len(b) for _, b, _ in out))
    man.add("ipv6_frames", sum(1 for _, b, _ in out if b[12:14] == b"\x86\xdd"))
    man.add("flows_concurrent_mean", int(total_w))
    man.add("conversations", len(flows))
    return [(b, c, t) for t, b, c in out]


def write_raw(path, frames, period_s=1.0):
    """A pcap of raw frames (bytes, from_client, time in periods)."""
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for b, _, t in frames:
            us = int(t * period_s * 1e6)
            fh.write(struct.pack("<IIII", 1700000000 + us // 1000000,
                                 us % 1000000, len(b), len(b)))
            fh.write(b)


def write(path, frames):
    w = PcapWriter(path, sync=False, linktype=1)
    for f, _ in frames:
        w.write(bytes(f))
    w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("mixed", "random", "bench", "link",
                                     "smtp", "abort", "synflood"))
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--split", nargs=2, metavar=("A", "B"))
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--flows", type=int, default=1000)
    ap.add_argument("--packets", type=int, default=50000)
    ap.add_argument("--messages", nargs="+", default=[])
    ap.add_argument("--max", type=int, default=0)
    ap.add_argument("--manifest")
    ap.add_argument("--smtp-share", type=float, default=0.1,
                    help="link: share of the frames that are SMTP")
    ap.add_argument("--bounce-share", type=float, default=0.03,
                    help="link: share of SMTP sessions carrying a bounce")
    ap.add_argument("--chaos", type=int, default=0, metavar="N",
                    help="smtp: segments of 1..N bytes, reordered, "
                    "duplicated")
    ap.add_argument("--mss", type=int, default=MSS,
                    help="smtp: largest segment payload (jumbo: 8960)")
    ap.add_argument("--same-port", action="store_true",
                    help="smtp: sessions one after another on one 4-tuple")
    ap.add_argument("--with-mixed", action="store_true",
                    help="smtp: add the mixed capture's frames")
    ap.add_argument("--complete", action="store_true",
                    help="abort: end every DATA properly instead")
    ap.add_argument("--syns", type=int, default=120000,
                    help="synflood: spoofed SYNs")
    ap.add_argument("--before", type=float, default=0.8,
                    help="synflood: share of the SYNs before the sessions")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(
        1 << 31)
    rnd = random.Random(seed)
    man = Manifest()
    if a.mode == "mixed":
        frames = gen_mixed(rnd, man)
    elif a.mode == "random":
        frames = gen_random(rnd, man, a.count)
    elif a.mode == "bench":
        frames = gen_bench(rnd, man, a.flows, a.packets)
    elif a.mode == "link":
        frames = gen_link(rnd, man, a.packets, a.flows, a.smtp_share,
                          a.bounce_share, a.messages)
    elif a.mode == "abort":
        frames = gen_abort(rnd, man, a.count, a.complete)
    elif a.mode == "synflood":
        frames = gen_synflood(rnd, man, a.messages, a.max, a.syns, a.before)
    else:
        frames = gen_smtp(rnd, man, a.messages, a.max, a.chaos,
                          a.same_port, a.mss)
        if a.with_mixed:
            mixed = gen_mixed(rnd, man)
            frames = interleave_lists(rnd, [frames, mixed])
    man.add("frames_total", len(frames))
    if a.mode == "link":
        write_raw(a.out, frames)
    else:
        write(a.out, frames)
    if a.split:
        write(a.split[0], [x for x in frames if x[1]])
        write(a.split[1], [x for x in frames if not x[1]])
        man.add("split_a", sum(1 for x in frames if x[1]))
        man.add("split_b", sum(1 for x in frames if not x[1]))
    m = dict(man.c, seed=seed)
    if a.manifest:
        with open(a.manifest, "w") as fh:
            json.dump(m, fh, indent=1, sort_keys=True)
    print("gen_pcap: %s: %d frames, seed %d" % (a.out, len(frames), seed),
          file=sys.stderr)


if __name__ == "__main__":
    main()
