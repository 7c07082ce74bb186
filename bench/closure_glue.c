// SPDX-License-Identifier: GPL-2.0
/* The benchmark module carries its own copy of the closure glue. */
#include "../c/closure_glue.c"
