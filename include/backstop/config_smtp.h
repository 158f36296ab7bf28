/* SPDX-License-Identifier: BSD-3-Clause */
/* Setting rows of the smtp module (see config.h). */
#ifndef BACKSTOP_CONFIG_SMTP_H
#define BACKSTOP_CONFIG_SMTP_H

#define BS_CFG_SMTP(X)

#endif
