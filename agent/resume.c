/*
 * resume.c: the host agent's state file (session and resume secret) across
 * --daemon restarts, in lib's egress_state format (mode 0600).
 */

#include <stdio.h>
#include <string.h>

#include "resume.h"

int resume_path(const char *lease, char *out, size_t cap)
{
    char dir[900];

    if (config_state_dir(dir, sizeof(dir)) < 0)
        return -1;
    snprintf(out, cap, "%s/%s.host.state", dir, lease);
    return 0;
}

void resume_save(agent_t *ag)
{
    egress_state_t st;
    egress_error_t err;

    if (!ag->cred.state_path[0])
        return;
    memset(&st, 0, sizeof(st));
    snprintf(st.session, sizeof(st.session), "%s", ag->cred.session);
    snprintf(st.resume, sizeof(st.resume), "%s", ag->cred.resume);
    if (egress_state_save(&st, ag->cred.state_path, &err) < 0)
        agent_log("cannot write state file %s: %s", ag->cred.state_path, err.message);
    egress_state_wipe(&st);
}

void resume_load(agent_t *ag)
{
    egress_state_t st;
    egress_error_t err;

    if (egress_state_load(&st, ag->cred.state_path, &err) < 0)
        agent_log("ignoring state file %s: %s", ag->cred.state_path, err.message);
    if (st.session[0])
        snprintf(ag->cred.session, sizeof(ag->cred.session), "%s", st.session);
    if (st.resume[0])
        snprintf(ag->cred.resume, sizeof(ag->cred.resume), "%s", st.resume);
    egress_state_wipe(&st);
}
