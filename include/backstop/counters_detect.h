/* SPDX-License-Identifier: BSD-3-Clause */
/* Counter rows of NDR detection (see counters.h). */
#ifndef BACKSTOP_COUNTERS_DETECT_H
#define BACKSTOP_COUNTERS_DETECT_H

#define BS_CNT_DETECT(X)

#endif
