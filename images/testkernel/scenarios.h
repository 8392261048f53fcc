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

/*
 * Results that go on the PASS line after the name, as key=value words:
 * "SANDVMM-TEST: PASS NAME <text>". The last call wins; the text is cut
 * to 191 bytes.
 */
void scenario_pass_detail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
/* "" if none was set. */
const char *scenario_pass_text(void);

#endif
