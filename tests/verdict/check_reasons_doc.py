#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Every reason code of the verdict (BS_VERDICT_REASONS in
include/backstop/counters_verdict.h) is documented in docs/VERDICT.md's
table of reason codes, and the table names no code that does not exist.

  check_reasons_doc.py COUNTERS_VERDICT_H VERDICT_MD"""
import re
import sys

codes = re.findall(r"^\s+R\(X,\s*([a-z_0-9]+),", open(sys.argv[1]).read(), re.M)
doc = open(sys.argv[2]).read()
table = doc[doc.index("## Reason codes"):]
table = table[:table.index("\n## ", 3)]
documented = re.findall(r"^\| `([a-z_0-9]+)` \|", table, re.M)
missing = [c for c in codes if c not in documented]
extra = [c for c in documented if c not in codes]
if not codes or missing or extra:
    print("reason codes not documented: %s; documented but unknown: %s"
          % (missing, extra))
    sys.exit(1)
print("ok - %d reason codes documented" % len(codes))
