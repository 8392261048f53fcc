/*
 * blkscenarios.h - the virtio-blk scenarios (see blkscenarios.c).
 */
#ifndef BLKSCENARIOS_H
#define BLKSCENARIOS_H

#include "lib.h"

const char *run_blk_rw(void);
const char *run_blk_ro(void);
const char *run_blk_bench(void);

#endif
