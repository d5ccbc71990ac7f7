/* cfgpolicy.h — what a pipeline definition may do, by who wrote it.
 *
 * The operator's own pipeline files are trusted (like Kafka Connect's worker config): ${VAR} is
 * expanded, paths may point anywhere, every librdkafka property may be set except the few that
 * would switch a delivery guarantee off. A pipeline created over REST is untrusted: no ${VAR}
 * expansion, path-typed settings (SL_T_PATH) only inside the operator's data directory, no
 * SL_CFG_OPERATOR_ONLY settings, and SL_CFG_KEYS_LISTED maps only with their allow-listed keys.
 *
 * The supervisor checks a definition with the policy of its author and hands the child process
 * the very text it checked, together with the policy (see cfg_policy_env / cfg_policy_from_env). */
#ifndef SL_HOST_CFGPOLICY_H
#define SL_HOST_CFGPOLICY_H

#include <stddef.h>

typedef struct cfg_policy {
    int untrusted;        /* created over REST */
    const char *data_dir; /* realpath of the data directory REST pipelines' paths stay in; NULL: none */
    const char *text;     /* the definition's text; NULL: read the file */
} cfg_policy;

/** The policy pipeline_load uses: trusted, file read from disk, unless cfg_policy_from_env
 *  set another (the child of a supervisor). */
const cfg_policy *cfg_policy_default(void);

/** Never a place for a path-typed setting of an untrusted pipeline (plugin, pipeline, state and
 *  web directories). Kept as realpaths; a missing directory is ignored. */
void cfg_forbid_dir(const char *dir);
/** Like cfg_forbid_dir, unless the data directory lies inside `dir` (the state directory, which
 *  holds the default data directory STATE/data next to the token and the REST pipelines). */
void cfg_forbid_around_data(const char *dir);

/** The child's environment for `pol`, one set(ctx, name, value) per variable (value NULL: unset
 *  it): the text goes in a memfd on the child's fd `text_fd`. */
void cfg_policy_env(const cfg_policy *pol, int text_fd, void (*set)(void *ctx, const char *name, const char *value),
                    void *ctx);
/** In a child started by the supervisor: read the policy and the checked text back and make
 *  them the default. 0 when there is nothing to read or all went well; -1 with err. */
int cfg_policy_from_env(char *err, size_t errlen);
/** Creates a memfd holding `text` (for cfg_policy_env); -1 on error. */
int cfg_text_fd(const char *text);

/** Resolves and (for untrusted pipelines) confines one path-typed value. `base` is the
 *  directory relative paths of trusted pipelines resolve against. Returns a malloc'd absolute
 *  path, or NULL with the reason in why. */
char *cfg_resolve_path(const cfg_policy *pol, const char *base, const char *value, char *why, size_t whylen);

/** Names of pipelines and stages: [A-Za-z0-9][A-Za-z0-9._-]{0,63}. */
int cfg_valid_name(const char *s);
#define CFG_NAME_RULE "a name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"

#endif
