#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""End to end: mail inside STARTTLS judged by backstop-milter.

Two real Postfix instances in network namespaces joined through backstop
(net_af_packet inline pair): a remote Postfix (remote.example.org) that
bounces mail and relays over TLS only (smtp_tls_security_level =
encrypt), and the protected MX (example.com) with STARTTLS and
smtpd_milters pointing at backstop-milter (milter_default_action =
accept).  The remote bounces two messages sent "from" example.com:
one whose envelope sender carries a BATV tag Exim made with the
domain's key (genuine), one untagged (forged, batv.enforce).  The MX
must refuse the forged NDR with 550 5.7.1 at the end of DATA (the
remote logs the reply and drops the bounce), deliver the genuine one
with the original inside it byte for byte, and deliver ordinary mail.
Every session is TLS, so backstop, between them, must report them all
as uninspected because of STARTTLS for the MX's address."""
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "milter"))
import bstest  # noqa: E402
import mtlib  # noqa: E402
import netlab  # noqa: E402

EXIM = "/opt/backstop-tools/exim/usr/sbin/exim4"
c = bstest.Checker("e2e_milter")
netlab.require_lab("e2e_milter", programs=(EXIM,))
milter_bin = os.environ["BACKSTOP_MILTER"]
rules = os.path.join(bstest.SRC, "rules", "default.rules")

lab = netlab.Lab(bstest.backstop_bin())
try:
    lab.up()
    lab.start_backstop()
    # BATV tag for alice@example.com, made by Exim with the domain's key.
    spool = os.path.join(lab.dir, "exim-spool")
    os.makedirs(spool)
    with open(os.path.join(lab.dir, "exim.conf"), "w") as f:
        f.write("spool_directory = %s\nlog_file_path = %s/%%slog\n" % (
            spool, lab.dir))
    tag = subprocess.run([EXIM, "-C", os.path.join(lab.dir, "exim.conf"),
                          "-be", "${prvs{alice@example.com}{e2e-key}{3}}"],
                         stdout=subprocess.PIPE, text=True,
                         check=True).stdout.strip()
    c.true("Exim made a tag (%s)" % tag, tag.startswith("prvs=3"))

    port = mtlib.free_port()
    m = mtlib.Milter(milter_bin, lab.dir,
                     "protected_domains: [example.com]\n"
                     "batv: {enforce: true, keys: [{id: 3, secret: e2e-key}]}\n",
                     name="milter", port=port,
                     prefix=("ip", "netns", "exec", lab.sns),
                     args=("--rules", rules))
    lab.start_postfix(domain="example.com", tls=True, extra={
        "smtpd_milters": "inet:127.0.0.1:%d" % port,
        "milter_default_action": "accept",
        "milter_protocol": "6",
        "smtpd_tls_loglevel": "1",
    })
    remote_etc = lab.start_postfix(
        domain="remote.example.org", side="client", name="remote", extra={
            "virtual_mailbox_domains": "remote.example.org",
            "virtual_mailbox_maps": "inline:{bob@remote.example.org=inbox/}",
            "transport_maps": "inline:{example.com=smtp:[%s]:25}" %
                              netlab.SRV4,
            "smtp_tls_security_level": "encrypt",
            "smtp_tls_loglevel": "1",
            "delay_warning_time": "0",
        })

    def inject(sender, rcpt, msg):
        r = netlab.sh("/usr/sbin/sendmail", "-C", remote_etc, "-f", sender,
                      rcpt, ns=lab.cns, input=msg.decode(), check=False)
        c.eq("sendmail %s -> %s (%s)" % (sender, rcpt, r.stderr[-200:]),
             r.returncode, 0)

    def original(tag_):
        return (b"From: Alice <alice@example.com>\n"
                b"To: nobody@remote.example.org\n"
                b"Subject: report " + tag_ + b"\n"
                b"Date: Mon, 01 Dec 2025 10:00:00 +0000\n"
                b"Message-ID: <orig-" + tag_ + b"@example.com>\n\n"
                b"The quarterly report, line 1.\n"
                b"Line 2 with trailing space \n.dot-started line\n")

    genuine, forged = original(b"genuine"), original(b"forged")
    ordinary = (b"From: carol@remote.example.org\nTo: bob@example.com\n"
                b"Subject: ordinary\nDate: Mon, 01 Dec 2025 10:01:00 +0000\n"
                b"Message-ID: <ordinary.1@remote.example.org>\n\n"
                b"Just mail.\n")
    inject(tag, "nobody@remote.example.org", genuine)
    inject("alice@example.com", "nobody@remote.example.org", forged)
    inject("carol@remote.example.org", "bob@example.com", ordinary)

    rlog = os.path.join(lab.dir, "remote", "maillog")
    deadline = time.time() + 90
    got, rtext = [], ""
    while time.time() < deadline:
        got = lab.delivered()
        rtext = open(rlog).read() if os.path.exists(rlog) else ""
        if len(got) >= 2 and "5.7.1" in rtext:
            break
        time.sleep(0.5)
    time.sleep(2)  # anything more that would arrive
    got = lab.delivered()
    rtext = open(rlog).read() if os.path.exists(rlog) else ""
    c.eq("two messages delivered (genuine bounce, ordinary)", len(got), 2)
    bounces = [g for g in got if b"orig-genuine" in g or b"orig-forged" in g]
    c.eq("one bounce delivered", len(bounces), 1)
    gb = bounces[0] if bounces else b""
    c.true("the delivered bounce is the genuine one",
           b"orig-genuine@example.com" in gb and b"orig-forged" not in gb)
    c.true("the genuine bounce went to the tagged address",
           tag.encode() in gb)
    c.true("the genuine bounce carries the original byte for byte",
           genuine in gb)
    c.true("the genuine bounce is an NDR of the remote Postfix",
           b"MAILER-DAEMON@mx.remote.example.org" in gb)
    od = [g for g in got if b"ordinary.1@remote.example.org" in g]
    c.true("ordinary mail delivered byte for byte",
           len(od) == 1 and od[0].endswith(ordinary))
    c.true("the remote used TLS to the MX",
           re.search(r"TLS connection established to \S*\[%s\]" %
                     re.escape(netlab.SRV4), rtext) is not None)
    rej = [ln for ln in rtext.splitlines() if "550 5.7.1" in ln]
    c.true("the remote logs the 550 5.7.1 for the forged bounce (%s)" %
           (rej[:1],), any("alice@example.com" in ln and
                           "Backscatter refused" in ln and
                           "status=bounced" in ln for ln in rej))
    q = netlab.sh("postqueue", "-c", remote_etc, "-p", ns=lab.cns,
                  check=False)
    c.true("the remote dropped it (queue empty: %s)" % q.stdout[-200:],
           "Mail queue is empty" in q.stdout)
    mlog = open(os.path.join(lab.dir, "postfix", "maillog")).read()
    c.true("the MX says the milter refused it",
           "milter-reject: END-OF-MESSAGE" in mlog and "5.7.1" in mlog)
    cnt = m.counters()
    c.eq("milter: refused", cnt.get("milter_refused"), 1)
    c.eq("milter: judged", cnt.get("milter_judged"), 3)
    c.eq("milter: BATV valid once", cnt.get("verdict_reason_batv_valid"), 1)
    c.eq("milter: nothing unjudged",
         sum(cnt.get(k, 0) for k in ("milter_overload", "milter_scan_cap",
                                     "milter_no_rules", "milter_nomem",
                                     "milter_detect_failed")), 0)
    m.stop()
    lab.stop_postfix()
    rep = lab.stop_backstop()
    c.true("backstop saw STARTTLS sessions", rep.get("smtp_starttls", 0) >= 3)
    out = open(os.path.join(lab.dir, "backstop.out")).read()
    row = re.search(r"coverage server %s sessions (\d+) uninspected (\d+) "
                    r"share ([\d.]+)%% starttls (\d+)" %
                    re.escape(netlab.SRV4), out)
    c.true("coverage row for the MX", row is not None)
    if row:
        s, u, share, st = row.groups()
        c.true("coverage: the MX's sessions (%s)" % s, int(s) >= 3)
        c.eq("coverage: all uninspected because of STARTTLS",
             (int(u), int(st)), (int(s), int(s)))
        c.eq("coverage: share", share, "100.0")
finally:
    lab.close()
c.done()
