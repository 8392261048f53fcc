/*
 * faults.h - scenarios that end the machine abnormally (see faults.c).
 */
#ifndef FAULTS_H
#define FAULTS_H

#include "lib.h"

const char *run_triple_fault(void);
const char *run_emulation_failure(void);

#endif
