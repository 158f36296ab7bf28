#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Make DKIM test material with independent signers: an RSA key signed
with Perl's Mail::DKIM (libmail-dkim-perl), an Ed25519 key signed with
dkimpy (python3-dkim, PyNaCl), each with relaxed and simple header
canonicalisation.  Writes into OUTDIR:

  keys.yaml           dkim_keys entries for example.com (rsa1, ed1)
  {rsa,ed}_{relaxed,simple}.hdr   header blocks (CRLF), signature first
  qp_bounce.eml       a bounce whose text/rfc822-headers part carries
                      rsa_relaxed.hdr quoted-printable encoded

  make_dkim.py OUTDIR"""
import base64
import os
import quopri
import subprocess
import sys

import dkim
import nacl.signing

out = sys.argv[1]
os.makedirs(out, exist_ok=True)

MSG = (b"Received: from mua.example.com (mua.example.com [10.1.2.3])\r\n"
       b"\tby out1.example.com (Postfix) with ESMTPSA id 4A1B2C3D\r\n"
       b"\tfor <bob@example.org>; Sun, 17 Mar 2030 17:40:00 +0000\r\n"
       b"From: Alice Example <alice@example.com>\r\n"
       b"To: Bob <bob@example.org>\r\n"
       b"Subject: Quarterly   report,\r\n"
       b"  second line\r\n"
       b"Date: Sun, 17 Mar 2030 17:40:00 +0000\r\n"
       b"Message-ID: <20300317174000.1@example.com>\r\n"
       b"MIME-Version: 1.0\r\n"
       b"Content-Type: text/plain\r\n"
       b"\r\n"
       b"Hello Bob.\r\n")
HEADERS = ["from", "to", "subject", "date", "message-id"]


def crlf(b):
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def header_of(msg):
    return msg[:msg.index(b"\r\n\r\n") + 2]


def write(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


# RSA with Mail::DKIM.
rsa_pem = os.path.join(out, "rsa.pem")
subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                "rsa_keygen_bits:2048", "-out", rsa_pem], check=True,
               stderr=subprocess.DEVNULL)
der = subprocess.run(["openssl", "pkey", "-in", rsa_pem, "-pubout",
                      "-outform", "DER"], check=True,
                     capture_output=True).stdout
rsa_pub = base64.b64encode(der).decode()
PERL = r'''
use strict; use Mail::DKIM::Signer; use Mail::DKIM::TextWrap;
my ($key, $method, $hdrs) = @ARGV;
my $d = Mail::DKIM::Signer->new(Algorithm => "rsa-sha256",
    Method => $method, Domain => "example.com", Selector => "rsa1",
    KeyFile => $key, Headers => $hdrs);
binmode STDIN; local $/; my $m = <STDIN>;
$d->PRINT($m); $d->CLOSE;
print $d->signature->as_string, "\r\n";
'''
for canon in ("relaxed", "simple"):
    sig = subprocess.run(["perl", "-e", PERL, rsa_pem, canon + "/simple",
                          ":".join(HEADERS)], input=MSG, check=True,
                         capture_output=True).stdout
    write("rsa_%s.hdr" % canon, crlf(sig) + header_of(MSG))

# Ed25519 with dkimpy.
sk = nacl.signing.SigningKey.generate()
ed_priv = base64.b64encode(bytes(sk))
ed_pub = base64.b64encode(bytes(sk.verify_key)).decode()
for canon in ("relaxed", "simple"):
    sig = dkim.sign(MSG, b"ed1", b"example.com", ed_priv,
                    signature_algorithm=b"ed25519-sha256",
                    canonicalize=(canon.encode(), b"simple"),
                    include_headers=[h.encode() for h in HEADERS])
    write("ed_%s.hdr" % canon, crlf(sig) + header_of(MSG))

write("keys.yaml", (
    "dkim_keys:\n"
    "  - {domain: example.com, selector: rsa1, public_key: \"%s\"}\n"
    "  - {domain: example.com, selector: ed1, public_key: "
    "\"v=DKIM1; k=ed25519; p=%s\"}\n" % (rsa_pub, ed_pub)).encode())

# A bounce carrying the signed header quoted-printable encoded (the
# folded Subject and '=' in the signature make QP do real work).
hdr = open(os.path.join(out, "rsa_relaxed.hdr"), "rb").read()
qp = quopri.encodestring(hdr.replace(b"\r\n", b"\n"))
bounce = (b"From: MAILER-DAEMON@mx.example.org\n"
          b"To: alice@example.com\n"
          b"Subject: Undelivered Mail Returned to Sender\n"
          b"Auto-Submitted: auto-replied\n"
          b"MIME-Version: 1.0\n"
          b"Content-Type: multipart/report; report-type=delivery-status;"
          b" boundary=\"BB\"\n\n"
          b"--BB\nContent-Type: text/plain\n\n"
          b"Your message could not be delivered.\n\n"
          b"--BB\nContent-Type: message/delivery-status\n\n"
          b"Reporting-MTA: dns; mx.example.org\n\n"
          b"Final-Recipient: rfc822; bob@example.org\n"
          b"Action: failed\nStatus: 5.1.1\n"
          b"Diagnostic-Code: smtp; 550 5.1.1 User unknown\n\n"
          b"--BB\nContent-Type: text/rfc822-headers\n"
          b"Content-Transfer-Encoding: quoted-printable\n\n" + qp +
          b"\n--BB--\n")
write("qp_bounce.eml", bounce)
print("ok")
