/*
 * chaos.h - scenario=chaos: random values to every device register and
 * random virtqueue descriptor chains, to check that the VMM survives a
 * hostile guest (see chaos.c).
 */
#ifndef CHAOS_H
#define CHAOS_H

#include "lib.h"

const char *run_chaos(void);

#endif
