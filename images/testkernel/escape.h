/*
 * escape.h - the sandbox escape demonstration scenario (see escape.c).
 */
#ifndef ESCAPE_H
#define ESCAPE_H

#include "lib.h"

const char *run_escape(void);

#endif
