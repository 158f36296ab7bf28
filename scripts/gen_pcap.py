#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Generate test, demo and benchmark captures for backstop.

Every capture comes with a manifest (JSON) that says, from the generator's
own knowledge, how many frames of each kind it wrote, so tests compare the
filter's counters with figures that do not come from the filter.

  gen_pcap.py mixed  OUT.pcap [--seed N] [--split A.pcap B.pcap]
  gen_pcap.py random OUT.pcap [--seed N] [--count N]
  gen_pcap.py bench  OUT.pcap [--seed N] [--flows N] [--packets N]
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


def write(path, frames):
    w = PcapWriter(path, sync=False, linktype=1)
    for f, _ in frames:
        w.write(bytes(f))
    w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("mixed", "random", "bench", "smtp",
                                     "abort", "synflood"))
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--split", nargs=2, metavar=("A", "B"))
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--flows", type=int, default=1000)
    ap.add_argument("--packets", type=int, default=50000)
    ap.add_argument("--messages", nargs="+", default=[])
    ap.add_argument("--max", type=int, default=0)
    ap.add_argument("--manifest")
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
