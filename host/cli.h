/* cli.h — subcommands that talk to a running `sluice run` over its REST API. */
#ifndef SL_HOST_CLI_H
#define SL_HOST_CLI_H

/** `sluice tap …` (argv[0] is "tap"); returns the exit code. */
int cmd_tap(int argc, char **argv);
/** `sluice top …` (argv[0] is "top"); returns the exit code. */
int cmd_top(int argc, char **argv);

#endif
