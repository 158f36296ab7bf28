/* SPDX-License-Identifier: BSD-3-Clause */
/* Setting rows of the detect module (see config.h). */
#ifndef BACKSTOP_CONFIG_DETECT_H
#define BACKSTOP_CONFIG_DETECT_H

#define BS_CFG_DETECT(X)

#endif
