/* state.h — sluice's state directory and the REST token kept in it.
 *
 * The state directory holds what sluice itself creates and must keep across restarts: the REST
 * token (rest.token), the pipelines created over REST (connectors/NAME.yaml) and default offset
 * files. It is chosen by --state-dir, else $SLUICE_STATE_DIR, else $XDG_STATE_HOME/sluice, else
 * ~/.local/state/sluice, and created with mode 0700. `sluice run` exports the resolved absolute
 * path as SLUICE_STATE_DIR, so pipeline processes (and their stages) find it there. */
#ifndef SL_HOST_STATE_H
#define SL_HOST_STATE_H

#include <stddef.h>

/** Resolves the state directory (`flag` is --state-dir or NULL), creates it (0700, parents
 *  too) and returns its absolute path (malloc'd), or NULL with the reason in err. */
char *state_dir_open(const char *flag, char *err, size_t errlen);

/** The REST token: $SLUICE_REST_TOKEN, else `configured` (rest.token in the host config), else
 *  the token in STATE/rest.token, which is created on first use (32 random bytes as hex, mode
 *  0600, created atomically so two starts at once agree). `*from` says where it came from (for
 *  the log). NULL with err when the file is unsafe (not ours, readable by others) or unreadable,
 *  or a token is malformed. */
char *state_token(const char *state_dir, const char *configured, const char **from, char *err, size_t errlen);

/** True when `tok` can be a bearer token: 1..256 visible ASCII characters. */
int state_token_valid(const char *tok);

#endif
