/*
 * netscenarios.h - the virtio-net scenarios (see netscenarios.c).
 */
#ifndef NETSCENARIOS_H
#define NETSCENARIOS_H

#include "lib.h"

const char *run_net_ping(void);
const char *run_net_echo(void);
const char *run_net_blast(void);

#endif
