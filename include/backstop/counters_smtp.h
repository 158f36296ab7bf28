/* SPDX-License-Identifier: BSD-3-Clause */
/* Counter rows of TCP reassembly and the SMTP engine (see counters.h). */
#ifndef BACKSTOP_COUNTERS_SMTP_H
#define BACKSTOP_COUNTERS_SMTP_H

#define BS_CNT_SMTP(X)

#endif
