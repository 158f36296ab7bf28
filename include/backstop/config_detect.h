/* SPDX-License-Identifier: BSD-3-Clause */
/* Setting rows of the detect module (see config.h and detect.h). */
#ifndef BACKSTOP_CONFIG_DETECT_H
#define BACKSTOP_CONFIG_DETECT_H

#define BS_CFG_DETECT(X)                                                     \
	X(detect_rules_file, "detect.rules", STR, "rules/default.rules", 0, \
		0, "NDR signature rule file (docs/RULES.md), compiled "      \
		"into one Hyperscan streaming database at start and on "     \
		"reload")                                                    \
	X(detect_enabled, "detect.enabled", BOOL, "true", 0, 1,              \
		"Parse and scan bounce candidates; when false every "        \
		"message passes unclassified")

#endif
