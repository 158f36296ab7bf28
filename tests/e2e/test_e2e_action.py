#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""End to end: backscatter refused on the wire, with real mail servers
bouncing real mail, forged and genuine (issue 9).

    [ns client: the Internet]          backstop          [ns server: example.com]
    remote Postfix (remote.example.org)  <-->  inline  <-->  Postfix MX (inbound)
    swaks (a spammer)                          pair          Exim (outbound relay)

- The protected domain example.com: a real Postfix is its inbound MX
  (accepts any local part, so BATV-tagged addresses too); its outbound
  mail leaves through a real Exim that tags the envelope sender with
  ${prvs{...}} and signs with DKIM (its own dkim_* transport options).
- The Internet side: a real Postfix that accepts mail for unknown users
  (smtpd_reject_unlisted_recipient = no) and then bounces it (Postfix's
  own NDR), verifies senders with a callout (reject_unverified_sender,
  null sender probes), and a spammer (swaks) sending it mail whose
  MAIL FROM is forged in example.com.
- backstop between them (af_packet inline pair), with BATV enforcement,
  the domain's DKIM key and relays, the outbound ledger.

Asserted, over IPv4 and over IPv6:
- the NDR of forged mail never lands in the MX's mailbox or queue (its
  Message-ID is not in the MX's log), the remote Postfix logs the
  550 5.7.1 for it and drops it: bounced, nothing queued, no second
  bounce;
- the NDR of mail the domain really sent through Exim lands byte for
  byte (the MX's copy is the bytes on the wire, as backstop's event-log
  digest of the session says, after the header lines the MX prepends),
  and carries the Exim-signed original;
- ordinary mail both ways lands byte for byte (same check), and the
  ledger learns the outbound one;
- the remote's sender-verification callouts to the MX (MAIL FROM:<>,
  RCPT, QUIT) pass;
then, IPv4: monitor mode changes nothing (the forged NDR lands, logged
as monitor); without a rule set (detect.enabled: false) and with a cap
filled (detect.inflight_max 1 held by an open message), mail passes.
"""
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import bstest  # noqa: E402
import netlab  # noqa: E402

EXIM = "/opt/backstop-tools/exim/usr/sbin/exim4"
KEY = "e2e-action-key"
c = bstest.Checker("e2e_action")
netlab.require_lab("e2e_action", programs=(EXIM, "/usr/sbin/sendmail",
                                           "postqueue"))

lab = netlab.Lab(bstest.backstop_bin())
n_start = [0]
events = []


def start_backstop(extra=""):
    n_start[0] += 1
    cfg = os.path.join(lab.dir, "backstop%d.yaml" % n_start[0])
    ev = os.path.join(lab.dir, "events%d.jsonl" % n_start[0])
    with open(cfg, "w") as f:
        f.write(BS_CFG + extra)
    lab.extra_opts = ["--config", cfg, "--event-log", ev, "--event-digest"]
    lab.start_backstop()
    events.append(ev)


def stop_backstop():
    rep = lab.stop_backstop()
    recs = []
    with open(events[-1]) as f:
        for line in f:
            r = json.loads(line)
            if "event" not in r:
                recs.append(r)
    return rep, recs


def wait(cond, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.3)
    return cond()


def maildir(path):
    out = []
    for sub in ("new", "cur"):
        p = os.path.join(path, sub)
        if os.path.isdir(p):
            for fn in sorted(os.listdir(p)):
                with open(os.path.join(p, fn), "rb") as f:
                    out.append(f.read())
    return out


def on_the_wire(stored, digests):
    """True when stored (a maildir file) is, after some header lines the
    receiver prepended, exactly the bytes of one of the sessions whose
    SHA-256 backstop logged (CRLF on the wire, LF in the file)."""
    lines = stored.split(b"\n")
    for k in range(0, 16):
        rest = b"\n".join(lines[k:]).replace(b"\n", b"\r\n")
        if hashlib.sha256(rest).hexdigest() in digests:
            return True
    return False


def log(path):
    return open(path).read() if os.path.exists(path) else ""


try:
    lab.up()
    d = lab.dir
    # The domain's DKIM key: Exim signs with the private half, backstop
    # knows the public one (as the DNS p= tag).
    dkim_key = os.path.join(d, "dkim.pem")
    netlab.sh("openssl", "genrsa", "-out", dkim_key, "2048")
    os.chmod(dkim_key, 0o644)
    der = subprocess.run(
        ["openssl", "rsa", "-in", dkim_key, "-pubout", "-outform", "DER"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
    pub_b64 = base64.b64encode(der).decode()
    BS_CFG = """protected_domains: [example.com]
batv: {enforce: true, keys: [{id: 1, secret: "%s"}]}
dkim_keys: [{domain: example.com, selector: s1, public_key: "%s"}]
relays: [%s, "%s"]
ledger: {snapshot: %s}
""" % (KEY, pub_b64, netlab.SRV4, netlab.SRV6, os.path.join(d, "ledger"))
    start_backstop()

    # The protected MX (any local part: tagged addresses too).
    lab.start_postfix(domain="example.com")
    mx_log = os.path.join(d, "postfix", "maillog")
    # The Internet's Postfix: accepts unknown users, then bounces.
    remote_etc = lab.start_postfix(
        domain="remote.example.org", side="client", name="remote", extra={
            "virtual_mailbox_domains": "remote.example.org",
            "virtual_mailbox_maps": "inline:{bob@remote.example.org=inbox/}",
            "smtpd_reject_unlisted_recipient": "no",
            "transport_maps": "inline:{example.com=smtp:[%s]:25}" %
                              netlab.SRV4,
            "smtp_connection_cache_on_demand": "no",
            "smtpd_sender_restrictions": "reject_unverified_sender",
            "address_verify_sender": "<>",
            "delay_warning_time": "0",
        })
    remote_log = os.path.join(d, "remote", "maillog")
    remote_box = os.path.join(d, "remote", "mail", "inbox")

    # Exim, the domain's outbound relay, in the server namespace.
    spool, elog = os.path.join(d, "exim-spool"), os.path.join(d, "exim-log")
    for p in (spool, elog):
        os.makedirs(p)
        subprocess.run(["chown", "Debian-exim:Debian-exim", p], check=True)

    def exim_conf(route):
        path = os.path.join(d, "exim-%s.conf" % route.replace(":", "_"))
        with open(path, "w") as f:
            f.write("""primary_hostname = out.example.com
exim_path = %(exim)s
spool_directory = %(spool)s
log_file_path = %(elog)s/%%slog
keep_environment =
begin routers
to_remote:
  driver = manualroute
  transport = remote_smtp
  route_list = * "<+ %(route)s"
  self = send
begin transports
remote_smtp:
  driver = smtp
  return_path = ${prvs{$return_path}{%(key)s}{1}}
  dkim_domain = example.com
  dkim_selector = s1
  dkim_private_key = %(dkim)s
  dkim_canon = relaxed
begin retry
* * F,5m,1m
""" % {"exim": EXIM, "spool": spool, "elog": elog, "route": route,
       "key": KEY, "dkim": dkim_key})
        return path

    exim_cfg = {4: exim_conf(netlab.CLI4), 6: exim_conf(netlab.CLI6)}

    def exim_send(fam, sender, rcpt, msg):
        r = netlab.sh(EXIM, "-C", exim_cfg[fam], "-odf", "-f", sender, "--",
                      rcpt, ns=lab.sns, input=msg.decode(), check=False)
        c.eq("exim accepted %s -> %s (%s)" % (sender, rcpt,
                                              r.stderr[-200:]),
             r.returncode, 0)

    def remote_postconf(**kw):
        for k, v in kw.items():
            netlab.sh("postconf", "-c", remote_etc, "-e", "%s=%s" % (k, v))
        netlab.sh("postfix", "-c", remote_etc, "reload", ns=lab.cns)
        time.sleep(1.5)

    def remote_inject(sender, rcpt, msg):
        r = netlab.sh("/usr/sbin/sendmail", "-C", remote_etc, "-f", sender,
                      rcpt, ns=lab.cns, input=msg.decode(), check=False)
        c.eq("remote sendmail %s -> %s" % (sender, rcpt), r.returncode, 0)

    def spam(fam, tag):
        """The spammer: mail 'from' alice@example.com to an unknown user
        of the remote, which accepts it (after its callout) and bounces
        it to example.com."""
        path = os.path.join(d, "spam-%s.eml" % tag)
        with open(path, "wb") as f:
            f.write(b"From: Alice <alice@example.com>\r\nTo: nobody@remote."
                    b"example.org\r\nSubject: cheap pills %s\r\nDate: Mon, 01"
                    b" Dec 2025 10:00:00 +0000\r\nMessage-ID: <spam-%s@"
                    b"example.com>\r\n\r\nBuy now.\r\n" % (tag.encode(),
                                                          tag.encode()))
        r = lab.swaks("--from", "alice@example.com", "--to",
                      "nobody@remote.example.org", "--data", "@" + path,
                      server=netlab.CLI4 if fam == 4 else netlab.CLI6)
        c.eq("spammer's mail accepted by the remote (%s)" % tag,
             r.returncode, 0)

    def original(tag):
        return (b"From: Alice <alice@example.com>\n"
                b"To: nobody@remote.example.org\n"
                b"Subject: report %s\n"
                b"Date: Mon, 01 Dec 2025 10:00:00 +0000\n"
                b"Message-ID: <orig-%s@example.com>\n\n"
                b"The quarterly report, line 1.\n"
                b"Line 2 with trailing space \n.dot-started line\n"
                % (tag.encode(), tag.encode()))

    def mx_has(tag):
        return [m for m in lab.delivered() if tag.encode() in m]

    def remote_bounced(tag):
        """The remote's log lines for the NDR of the spam with tag."""
        t = log(remote_log)
        m = re.search(r"postfix/cleanup\[\d+\]: (\w+): message-id=<spam-%s@"
                      % re.escape(tag), t)
        if not m:
            return None
        qid = m.group(1)
        m2 = re.search(r"%s: sender non-delivery notification: (\w+)" % qid,
                       t)
        if not m2:
            return None
        return qid, m2.group(1)

    def forged_round(fam, tag, want_refused=True):
        """Spam -> the remote bounces -> the NDR to example.com."""
        spam(fam, tag)
        ids = wait(lambda: remote_bounced(tag))
        c.true("%s: the remote made an NDR" % tag, ids is not None)
        if ids is None:
            return None
        ndr_id = ids[1]

        def done():
            t = log(remote_log)
            return re.search(r"%s: to=<alice@example.com>[^\n]*status=("
                             r"bounced|sent|deferred)[^\n]*" % ndr_id, t)
        m = wait(done, 90)
        line = m.group(0) if m else ""
        time.sleep(1.5)   # anything more that would arrive
        t = log(remote_log)
        ndr_mid = re.search(r"%s: message-id=<([^>]+)>" % ndr_id, t)
        ndr_mid = ndr_mid.group(1) if ndr_mid else "?"
        if want_refused:
            c.true("%s: the remote logs the 550 5.7.1 and bounces (%s)" %
                   (tag, line[-160:]), "status=bounced" in line and
                   "550 5.7.1 Backscatter refused" in line)
            c.eq("%s: the NDR never lands at the MX" % tag, mx_has(
                "spam-" + tag), [])
            # Postfix's smtpd streams DATA into cleanup as it reads it,
            # so the MX may have logged the NDR's Message-ID; cut off
            # before the end of data, the file never entered the queue:
            # no qmgr line, no delivery for that queue id.
            mt = log(mx_log)
            mq = re.search(r"(\w+): message-id=<%s>" % re.escape(ndr_mid), mt)
            c.true("%s: the MX never queued it (%s)" % (
                tag, mq.group(1) if mq else "not even begun"),
                mq is None or not re.search(
                    r"qmgr\[\d+\]: %s: from=|%s: to=" % (mq.group(1),
                                                       mq.group(1)), mt))
            c.true("%s: the MX lost the session in DATA" % tag,
                   mq is None or "lost connection after DATA" in mt)
            q = netlab.sh("postqueue", "-c", lab.postfix_etc, "-p",
                          ns=lab.sns, check=False)
            c.true("%s: the MX's queue is empty" % tag,
                   "Mail queue is empty" in q.stdout)
            q = netlab.sh("postqueue", "-c", remote_etc, "-p", ns=lab.cns,
                          check=False)
            c.true("%s: the remote dropped it: nothing queued (%s)" %
                   (tag, q.stdout[-120:]), "Mail queue is empty" in q.stdout)
            c.eq("%s: no second bounce" % tag, len(re.findall(
                r"%s: sender non-delivery notification" % ndr_id, t)), 0)
            c.eq("%s: no retry" % tag, len(re.findall(
                r"%s: to=<alice@example.com>" % ndr_id, t)), 1)
        else:
            c.true("%s: the NDR was delivered (%s)" % (tag, line[-100:]),
                   "status=sent" in line)
            c.eq("%s: the NDR landed at the MX" % tag,
                 len(wait(lambda: mx_has("spam-" + tag))), 1)
        return ndr_mid

    for fam in (4, 6):
        srv = netlab.SRV4 if fam == 4 else netlab.SRV6
        F = "v%d" % fam
        if fam == 6:
            remote_postconf(transport_maps="inline:{example.com=smtp:[%s]:25}"
                            % netlab.SRV6)
        n_box = len(maildir(remote_box))
        n_mx = len(lab.delivered())
        # Ordinary mail both ways.
        inbound = (b"From: carol@remote.example.org\nTo: bob@example.com\n"
                   b"Subject: ordinary %s\nDate: Mon, 01 Dec 2025 10:01:00 "
                   b"+0000\nMessage-ID: <ordinary-%s@remote.example.org>\n\n"
                   b"Just mail.\n.A dot line\n" % (F.encode(), F.encode()))
        outbound = (b"From: Alice <alice@example.com>\nTo: bob@remote.example."
                    b"org\nSubject: hello %s\nDate: Mon, 01 Dec 2025 10:02:00 "
                    b"+0000\nMessage-ID: <out-%s@example.com>\n\nHello Bob.\n"
                    % (F.encode(), F.encode()))
        remote_inject("carol@remote.example.org", "bob@example.com", inbound)
        exim_send(fam, "alice@example.com", "bob@remote.example.org",
                  outbound)
        # The genuine NDR: mail the domain really sent, to an unknown
        # user of the remote (Exim tags and signs it).
        exim_send(fam, "alice@example.com", "nobody@remote.example.org",
                  original("genuine-" + F))
        got = wait(lambda: len(lab.delivered()) >= n_mx + 2 and
                   len(maildir(remote_box)) >= n_box + 1, 90)
        c.true("%s: inbound, outbound and the genuine NDR delivered" % F,
               bool(got))
        # The forged one.
        forged_round(fam, "forged-" + F)
        rep, recs = stop_backstop()
        digests = set(r.get("sha256") for r in recs)
        mx = lab.delivered()
        od = [m for m in mx if b"ordinary-" + F.encode() in m]
        c.true("%s: ordinary inbound mail landed byte for byte" % F,
               len(od) == 1 and od[0].endswith(inbound) and
               on_the_wire(od[0], digests))
        ob = [m for m in maildir(remote_box) if b"out-" + F.encode() in m]
        c.true("%s: ordinary outbound mail landed byte for byte (DKIM "
               "signed)" % F, len(ob) == 1 and ob[0].endswith(outbound)
               and on_the_wire(ob[0], digests) and
               b"DKIM-Signature: v=1; a=rsa-sha256" in ob[0])
        gb = [m for m in mx if b"orig-genuine-" + F.encode() in m]
        c.eq("%s: the genuine NDR landed once" % F, len(gb), 1)
        g = gb[0] if gb else b""
        c.true("%s: the genuine NDR is the remote Postfix's" % F,
               b"MAILER-DAEMON@mx.remote.example.org" in g)
        c.true("%s: the genuine NDR landed byte for byte" % F,
               on_the_wire(g, digests))
        c.true("%s: it went to the BATV-tagged address" % F,
               re.search(rb"Delivered-To: prvs=1\d{3}[0-9a-f]{6}=alice@"
                         rb"example.com", g) is not None)
        c.true("%s: it carries the original Exim signed" % F,
               original("genuine-" + F) in g and b"d=example.com" in g)
        # What backstop recorded.
        judged = {}
        for r in recs:
            om = r.get("detect", {}).get("original", {}).get("message_id")
            if om:
                judged[om] = r
        gr = judged.get("<orig-genuine-%s@example.com>" % F, {})
        c.eq("%s: genuine NDR: legit by its BATV tag" % F,
             (gr.get("verdict"), gr.get("reasons"), gr.get("taken")),
             ("legit", ["batv_valid"], None))
        fr = judged.get("<spam-forged-%s@example.com>" % F, {})
        c.eq("%s: forged NDR: backscatter, refused" % F,
             (fr.get("verdict"), fr.get("taken"), fr.get("reply")),
             ("backscatter", "refused", 0))
        c.true("%s: forged NDR's reasons (%s)" % (F, fr.get("reasons")),
               {"batv_missing", "relay_absent", "dkim_fail"} <=
               set(fr.get("reasons", [])))
        c.true("%s: forged NDR's flow was the MX's over IPv%d" % (F, fam),
               fr.get("flow", {}).get("dst") == srv)
        learned = sorted(r["detect"]["top"]["message_id"] for r in recs
                         if r.get("learned"))
        c.eq("%s: the ledger learned the domain's outbound mail" % F,
             learned, sorted(["<out-%s@example.com>" % F,
                              "<orig-genuine-%s@example.com>" % F]))
        c.eq("%s: one refusal" % F, rep.get("action_refused"), 1)
        c.eq("%s: no fail-open" % F, sum(v for k, v in rep.items()
                                         if k.startswith("action_failopen")),
             0)
        # The remote's callouts to the MX passed (and were not judged).
        t = log(remote_log)
        c.true("%s: sender verification callouts passed" % F,
               "status=deliverable" in t and
               "Sender address rejected" not in t)
        c.eq("%s: no message record for the callouts (never judged)" % F,
             [r for r in recs if r.get("mail_from") == "" and
              not r.get("detect")], [])
        start_backstop()

    # IPv4 from here on.
    remote_postconf(transport_maps="inline:{example.com=smtp:[%s]:25}" %
                    netlab.SRV4)
    # Monitor: the same forged bounce lands, logged as monitor.
    stop_backstop()
    start_backstop("mode: monitor\n")
    forged_round(4, "monitor", want_refused=False)
    rep, recs = stop_backstop()
    c.eq("monitor: logged and counted, not acted on",
         ([r.get("taken") for r in recs if r.get("verdict") ==
           "backscatter"], rep.get("action_monitor"),
          rep.get("action_refused")), (["monitor"], 1, 0))
    # No rule set: nothing is judged, the forged bounce passes.
    start_backstop("detect.enabled: false\n")
    forged_round(4, "norules", want_refused=False)
    rep, recs = stop_backstop()
    c.true("no rule set: passed unjudged (action_unjudged %s)" %
           rep.get("action_unjudged"), rep.get("action_unjudged", 0) >= 1 and
           rep.get("action_refused") == 0)
    # A cap filled: one message may be scanned at once, and an open
    # session holds it; the forged bounce passes unscanned.
    start_backstop("detect.inflight_max: 1\n")
    steps = os.path.join(d, "hold.json")
    with open(steps, "w") as f:
        json.dump([["send", "EHLO holder.example.org\r\n"], ["replies", 1],
                   ["send", "MAIL FROM:<carol@remote.example.org>\r\n"],
                   ["replies", 1],
                   ["send", "RCPT TO:<bob@example.com>\r\n"], ["replies", 1],
                   ["send", "DATA\r\n"], ["replies", 1],
                   ["send", "Subject: slow\r\n\r\nstill typing"],
                   ["sleep", 25], ["send", "\r\n.\r\nQUIT\r\n"],
                   ["replies", 2]], f)
    holder = subprocess.Popen(
        ["ip", "netns", "exec", lab.cns, "/usr/bin/python3",
         os.path.join(HERE, "smtp_raw.py"), netlab.SRV4, "25", steps],
        stdout=subprocess.PIPE, text=True)
    time.sleep(2)
    forged_round(4, "capped", want_refused=False)
    out, _ = holder.communicate(timeout=120)
    rep, recs = stop_backstop()
    c.true("cap filled: passed unscanned (detect_inflight_cap %s)" %
           rep.get("detect_inflight_cap"),
           rep.get("detect_inflight_cap", 0) >= 1 and
           rep.get("action_refused") == 0)
    c.true("cap filled: the holding session ended normally (%s)" %
           out.strip()[-120:], '"error"' not in out)
finally:
    lab.close()
c.done()
