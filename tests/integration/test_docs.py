#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""docs/CONFIG.md and docs/METRICS.md list exactly the settings and
counters the code defines (regenerated from the binary and compared)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402

c = bstest.Checker("docs")
r = subprocess.run([bstest.PY, os.path.join(bstest.SRC, "scripts",
                                            "gen_docs.py"), "--check",
                    bstest.backstop_bin()], stdout=subprocess.PIPE, text=True)
c.eq("reference tables current (%s)" % r.stdout.strip(), r.returncode, 0)
c.done()
