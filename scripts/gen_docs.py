#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Paste the settings and counters reference tables, printed by backstop
from the tables the code uses, into docs/CONFIG.md and docs/METRICS.md
between their BEGIN/END markers.

  gen_docs.py [--check] [BACKSTOP]

--check writes nothing and exits 1 if a document is out of date (the test
suite runs this)."""
import os
import subprocess
import sys

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = (("CONFIG.md", "--list-settings", "SETTINGS"),
        ("METRICS.md", "--list-counters", "COUNTERS"))


def main():
    args = [a for a in sys.argv[1:] if a != "--check"]
    check = "--check" in sys.argv
    binary = args[0] if args else os.path.join(SRC, "build", "backstop")
    stale = []
    for name, opt, tag in DOCS:
        path = os.path.join(SRC, "docs", name)
        table = subprocess.check_output([binary, opt], text=True)
        with open(path) as f:
            text = f.read()
        begin, end = "<!-- BEGIN %s -->\n" % tag, "<!-- END %s -->" % tag
        a, b = text.index(begin) + len(begin), text.index(end)
        new = text[:a] + table + text[b:]
        if new != text:
            stale.append(name)
            if not check:
                with open(path, "w") as f:
                    f.write(new)
    if check and stale:
        print("out of date: %s (run scripts/gen_docs.py)" % ", ".join(stale))
        sys.exit(1)
    print("docs: %s" % ("stale: " + ", ".join(stale) if stale else "current"))


if __name__ == "__main__":
    main()
