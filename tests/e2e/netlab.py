# SPDX-License-Identifier: BSD-3-Clause
"""A small lab for end-to-end tests: a client and a server network
namespace joined through backstop.

    [ns client] cA ==veth== cB --(net_af_packet0)-- backstop
    [ns server] sA ==veth== sB --(net_af_packet1)--     |  inline pair 0<->1

Kernel TCP stacks on both sides; a real Postfix instance of its own (own
config, queue and mailbox directories) listens in the server namespace;
swaks runs in the client namespace.  Addresses are documentation ranges
that exist only inside the namespaces this lab creates.  Root only.
"""
import grp
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLI4, SRV4 = "198.51.100.1", "198.51.100.2"
CLI6, SRV6 = "2001:db8:25::1", "2001:db8:25::2"


# What every lab needs; a missing one fails the test and is named
# (bstest.require).  swaks's STARTTLS needs Net::SSLeay and its IPv6
# IO::Socket::INET6: both are only Recommends of Debian's swaks.
LAB_PROGRAMS = ("ip", "ethtool", "sysctl", "swaks", "openssl",
                "/usr/sbin/postfix", "/usr/sbin/postconf")
LAB_PERL = ("Net::SSLeay", "IO::Socket::INET6")


def require_lab(name, programs=(), perl_modules=()):
    import bstest
    bstest.require(name, root=True,
                   programs=LAB_PROGRAMS + tuple(programs),
                   perl_modules=LAB_PERL + tuple(perl_modules))


def sh(*cmd, check=True, ns=None, **kw):
    if ns:
        cmd = ("ip", "netns", "exec", ns) + cmd
    return subprocess.run(cmd, check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, **kw)


class Lab:
    def __init__(self, backstop, extra_opts=(), tag=None):
        self.backstop = backstop
        self.extra_opts = list(extra_opts)
        t = tag or str(os.getpid() % 100000)
        self.cns, self.sns = "bsc%s" % t, "bss%s" % t
        self.cA, self.cB, self.sA, self.sB = ("bc%sa" % t, "bc%sb" % t,
                                              "bs%sa" % t, "bs%sb" % t)
        self.dir = tempfile.mkdtemp(prefix="bse2e-")
        os.chmod(self.dir, 0o755)
        self.bs = None
        self.postfix_dir = None
        self.postfix_etc = None

    # -- network ----------------------------------------------------------
    def up(self):
        self.down_net()
        for ns in (self.cns, self.sns):
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
        for a, b, ns, ip4, ip6 in ((self.cA, self.cB, self.cns, CLI4, CLI6),
                                   (self.sA, self.sB, self.sns, SRV4, SRV6)):
            sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            sh("ip", "link", "set", a, "netns", ns)
            sh("ip", "addr", "add", ip4 + "/24", "dev", a, ns=ns)
            sh("ip", "-6", "addr", "add", ip6 + "/64", "dev", a, "nodad",
               ns=ns)
            sh("ip", "link", "set", a, "up", ns=ns)
            # Checksums must be real on the wire: backstop forwards frames
            # from one veth to another through packet sockets.
            sh("ethtool", "-K", a, "tx", "off", ns=ns, check=False)
            # The host side carries frames for backstop only: no IPv6, and
            # no ARP answers from the host's own addresses (the machine's
            # own interfaces may use documentation ranges too).
            sh("sysctl", "-qw", "net.ipv6.conf.%s.disable_ipv6=1" % b,
               check=False)
            sh("sysctl", "-qw", "net.ipv4.conf.%s.arp_ignore=8" % b,
               check=False)
            sh("ip", "link", "set", b, "up")
            sh("ethtool", "-K", b, "tx", "off", check=False)

    def down_net(self):
        for ns in (self.cns, self.sns):
            sh("ip", "netns", "del", ns, check=False)
        for i in (self.cB, self.sB):
            sh("ip", "link", "del", i, check=False)

    # -- backstop ---------------------------------------------------------
    def start_backstop(self):
        self.bs_out = open(os.path.join(self.dir, "backstop.out"), "w")
        self.bs_err = open(os.path.join(self.dir, "backstop.err"), "w")
        cmd = [self.backstop, "--no-huge", "--no-pci", "-m", "256", "-l",
               "0-1", "--file-prefix", "bse2e%d" % os.getpid(),
               "--log-level", "user1,info",
               "--vdev", "net_af_packet0,iface=%s" % self.cB,
               "--vdev", "net_af_packet1,iface=%s" % self.sB,
               "--"] + self.extra_opts
        self.bs = subprocess.Popen(cmd, stdout=self.bs_out,
                                   stderr=self.bs_err)
        # Ready when the two namespaces reach each other through it.
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.bs.poll() is not None:
                raise RuntimeError("backstop exited: %s" % self.log())
            r = sh("ping", "-c", "1", "-W", "1", SRV4, ns=self.cns,
                   check=False)
            if r.returncode == 0:
                return
        raise RuntimeError("no path through backstop: %s" % self.log())

    def stop_backstop(self):
        """Stop backstop cleanly; return its report as a dict."""
        if self.bs is None:
            return {}
        self.bs.send_signal(signal.SIGINT)
        try:
            self.bs.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.bs.kill()
            self.bs.wait()
            raise RuntimeError("backstop did not stop on SIGINT")
        self.bs_out.close()
        self.bs_err.close()
        rep = {"exit": self.bs.returncode}
        with open(os.path.join(self.dir, "backstop.out")) as f:
            for line in f:
                k, _, v = line.strip().partition(" ")
                if v.isdigit():
                    rep[k] = int(v)
        self.bs = None
        return rep

    def log(self):
        try:
            with open(os.path.join(self.dir, "backstop.err")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    # -- postfix ----------------------------------------------------------
    def start_postfix(self, domain="example.net", tls=False, extra=None,
                      side="server", name="postfix"):
        """Start Postfix; extra: more main.cf settings (name: value).
        side "client" starts a second instance in the client namespace
        (a remote MTA); its config directory is returned, and
        stop_postfix() stops it too."""
        d = os.path.join(self.dir, name)
        ns, addr4, addr6 = ((self.sns, SRV4, SRV6) if side == "server"
                            else (self.cns, CLI4, CLI6))
        etc = os.path.join(d, "etc")
        os.makedirs(etc)
        shutil.copy("/etc/postfix/master.cf", etc)
        for sub in ("dynamicmaps.cf", "dynamicmaps.cf.d", "postfix-files",
                    "postfix-files.d"):
            src = os.path.join("/etc/postfix", sub)
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(etc, sub))
            elif os.path.exists(src):
                shutil.copy(src, etc)
        uid = pwd.getpwnam("postfix").pw_uid
        gid = grp.getgrnam("postfix").gr_gid
        mailbox = os.path.join(d, "mail", "inbox") + "/"
        if side == "server":
            self.postfix_dir = d
            self.mailbox = mailbox
        os.makedirs(os.path.join(d, "mail"))
        os.chown(os.path.join(d, "mail"), uid, gid)
        main = {
            "compatibility_level": "3.6",
            "queue_directory": os.path.join(d, "spool"),
            "data_directory": os.path.join(d, "data"),
            "inet_interfaces": "%s, [%s]" % (addr4, addr6),
            "inet_protocols": "all",
            "myhostname": "mx.%s" % domain,
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "virtual_mailbox_domains": domain,
            "virtual_mailbox_base": os.path.join(d, "mail"),
            "virtual_mailbox_maps": "static:inbox/",
            "virtual_uid_maps": "static:%d" % uid,
            "virtual_gid_maps": "static:%d" % gid,
            "maillog_file": os.path.join(d, "maillog"),
            "maillog_file_prefixes": d,
            "smtpd_banner": "$myhostname ESMTP",
            "smtp_dns_support_level": "disabled",
            "disable_dns_lookups": "yes",
            "biff": "no",
            "message_size_limit": "20480000",
        }
        if tls:
            # A throwaway self-signed certificate: STARTTLS must work for
            # the client; what matters is that backstop stops inspecting.
            key, crt = os.path.join(etc, "key.pem"), os.path.join(etc,
                                                                 "crt.pem")
            sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
               "-keyout", key, "-out", crt, "-days", "1", "-subj",
               "/CN=mx.%s" % domain)
            main.update({"smtpd_tls_security_level": "may",
                         "smtpd_tls_cert_file": crt,
                         "smtpd_tls_key_file": key})
        main.update(extra or {})
        with open(os.path.join(etc, "main.cf"), "w") as f:
            for k, v in main.items():
                f.write("%s = %s\n" % (k, v))
        # postlog writes maillog_file; it must be started by master.cf.
        with open(os.path.join(etc, "master.cf"), "a") as f:
            f.write("postlog   unix-dgram n  -       n       -       1"
                    "       postlogd\n")
        os.makedirs(main["queue_directory"])
        os.makedirs(main["data_directory"])
        os.chown(main["data_directory"], uid, gid)
        if side == "server":
            self.postfix_etc = etc
        self.postfix_all = getattr(self, "postfix_all", []) + [(etc, ns)]
        r = sh("postfix", "-c", etc, "start", ns=ns, check=False)
        if r.returncode != 0:
            raise RuntimeError("postfix start failed (Postfix logs start-up "
                               "errors to syslog): %s %s" % (r.stdout,
                                                             r.stderr))
        deadline = time.time() + 20
        while time.time() < deadline:
            r = sh("bash", "-c", "exec 3<>/dev/tcp/%s/25 && head -c 3 <&3"
                   % addr4, ns=ns, check=False, timeout=5)
            if r.stdout.startswith("220"):
                return etc
            time.sleep(0.3)
        raise RuntimeError("postfix not listening")

    def postconf(self, **settings):
        """Change main.cf settings of the running Postfix and reload it
        (new sessions get them)."""
        for k, v in settings.items():
            sh("postconf", "-c", self.postfix_etc, "-e", "%s=%s" % (k, v))
        sh("postfix", "-c", self.postfix_etc, "reload", ns=self.sns)
        time.sleep(1.5)  # master restarts its services

    def stop_postfix(self):
        for etc, ns in getattr(self, "postfix_all", []):
            sh("postfix", "-c", etc, "stop", ns=ns, check=False)
        self.postfix_all = []
        self.postfix_etc = None

    def delivered(self):
        """Messages in the Postfix mailbox (maildir), as bytes."""
        out = []
        for sub in ("new", "cur"):
            p = os.path.join(self.mailbox, sub)
            if os.path.isdir(p):
                for fn in sorted(os.listdir(p)):
                    with open(os.path.join(p, fn), "rb") as f:
                        out.append(f.read())
        return out

    def wait_delivered(self, n, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.delivered()
            if len(got) >= n:
                return got
            time.sleep(0.2)
        return self.delivered()

    # -- client -----------------------------------------------------------
    def swaks(self, *args, server=SRV4, timeout=60):
        return sh("swaks", "--server", server, "--timeout", "20",
                  "--hide-all", *args, ns=self.cns, check=False,
                  timeout=timeout)

    def raw_smtp(self, steps, server=SRV4, timeout=60):
        """Run one SMTP session from the client namespace with the raw
        client (smtp_raw.py: exactly these bytes, replies read as
        told).  Returns its result: {"replies": [[code, line], ...],
        "eof": bool, "error": str (if any)}."""
        path = os.path.join(self.dir, "raw%d.json" % time.monotonic_ns())
        with open(path, "w") as f:
            json.dump(steps, f)
        r = sh("/usr/bin/python3", os.path.join(HERE, "smtp_raw.py"),
               server, "25", path, ns=self.cns, check=False,
               timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("smtp_raw failed: %s" % r.stderr[-500:])
        return json.loads(r.stdout)

    def close(self):
        try:
            if self.bs is not None:
                self.stop_backstop()
        finally:
            self.stop_postfix()
            self.down_net()
            if os.environ.get("BS_KEEP") is None:
                shutil.rmtree(self.dir, ignore_errors=True)
