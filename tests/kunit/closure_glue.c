// SPDX-License-Identifier: GPL-2.0
/* The test module carries its own copy of the closure glue it tests. */
#include "../../c/closure_glue.c"
