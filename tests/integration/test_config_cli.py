#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Configuration and command line: defaults, nested and dotted YAML keys,
lists, and clear errors (file and line, key named, untrusted text cut and
escaped) for bad files and options, always with a non-zero exit."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402

c = bstest.Checker("config_cli")
d = bstest.tmpdir()
NULL = ["net_null0,no-rx=1"]


def cfg(name, text):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    return p


rc, _, _, out, _ = bstest.run(NULL, ["--show-config"])
c.eq("show-config exits 0", rc, 0)
c.true("default SMTP ports are 25 and 587", "smtp.ports: [25, 587]" in out)
c.true("default flow table size", "flow.table_size: 65536" in out)

p = cfg("ok.yaml", "smtp:\n  ports: [25, 2525]\nflow.table_size: 4096\n"
        "flow:\n  timeout_ms: 60000\n")
rc, _, _, out, _ = bstest.run(NULL, ["--config", p, "--show-config"])
c.eq("valid config exits 0", rc, 0)
c.true("list value applied", "smtp.ports: [25, 2525]" in out)
c.true("dotted key applied", "flow.table_size: 4096" in out)
c.true("nested key applied", "flow.timeout_ms: 60000" in out)

rc, _, _, out, _ = bstest.run(NULL, ["--config", cfg("empty.yaml", ""),
                                     "--show-config"])
c.eq("empty config is valid", rc, 0)

bad = [
    ("unknown.yaml", "flow:\n  tabel_size: 5\n", "unknown setting 'flow.tabel_size'",
     ":2:"),
    ("range.yaml", "flow.table_size: 1\n", "flow.table_size", ":1:"),
    ("notnum.yaml", "flow.table_size: lots\n", "invalid value 'lots'", ":1:"),
    ("port0.yaml", "smtp.ports: [25, 0]\n", "smtp.ports", ":1:"),
    ("dup.yaml", "smtp.ports: [25, 25]\n", "smtp.ports", ":1:"),
    ("syntax.yaml", "flow: [\n", "YAML error", "syntax.yaml"),
    ("ctrl.yaml", "flow.table_size: \"\\e[31mred" + "x" * 200 + "\"\n",
     "\\x1b", "..."),
    ("relay.yaml", "protected_domains: [example.com]\nrelays:\n"
     "  - out1.example.com\n  - \"bad relay\"\n",
     "relays: invalid relay", ":4:"),
    ("pd.yaml", "protected_domains: [example.com]\ndomains:\n"
     "  example.org: {relays: []}\n", "example.org is not in "
     "protected_domains", ":3:"),
]
for name, text, want, want2 in bad:
    rc, _, _, out, err = bstest.run(NULL, ["--config", cfg(name, text)],
                                    check=False)
    c.eq("%s: exits 1" % name, rc, 1)
    c.true("%s: error says %r (got %r)" % (name, want, err[-300:]),
           want in err)
    c.true("%s: error says %r" % (name, want2), want2 in err)
    c.true("%s: no raw escape byte in the log" % name, "\x1b" not in err)

p = cfg("verdict.yaml", "protected_domains: [Example.COM]\n"
        "batv: {enforce: true, keys: [{id: 3, secret: \"hush-hush\"}]}\n"
        "domains: {example.com: {verdict.unknown: refuse}}\n")
rc, _, _, out, _ = bstest.run(NULL, ["--config", p, "--show-config"])
c.eq("verdict config exits 0", rc, 0)
c.true("domains are lower case", 'protected_domains: ["example.com"]' in out)
c.true("per-domain setting shown", "verdict.unknown: refuse" in out)
c.true("key ids shown", "# batv.keys: ids [3]" in out)
c.true("a BATV secret is never printed", "hush-hush" not in out)

rc, _, _, _, err = bstest.run(NULL, ["--config", os.path.join(d, "nope")],
                              check=False)
c.eq("missing file exits 1", rc, 1)
c.true("missing file named", "nope" in err)
rc, _, _, _, err = bstest.run(NULL, ["--idle-exit", "soon"], check=False)
c.eq("bad number exits 1", rc, 1)
rc, _, _, _, err = bstest.run(NULL, ["--frobnicate"], check=False)
c.eq("unknown option exits 1", rc, 1)
c.done()
