/*
 * scenarios.h - the table of test scenarios selected by scenario=NAME.
 */
#ifndef SCENARIOS_H
#define SCENARIOS_H

#include "lib.h"

struct scenario {
	const char *name;
	/* Returns NULL on success, else a one-word failure reason. */
	const char *(*run)(void);
};

/* NULL if there is no scenario of that name. */
const struct scenario *scenario_find(const char *name);

#endif
