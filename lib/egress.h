/*
 * egress.h: libegress, the plain-C core shared by ngx_stream_egress_module,
 * the egress agent and egress-coordinator. No nginx, lws or event-loop types.
 */

#ifndef EGRESS_H
#define EGRESS_H

#include "egress_error.h"
#include "egress_base64.h"
#include "egress_host.h"
#include "egress_allow.h"
#include "egress_psl.h"
#include "egress_frame.h"
#include "egress_proto.h"
#include "egress_flow.h"
#include "egress_crypto.h"
#include "egress_state.h"
#include "egress_upgrade.h"
#include "egress_wsframe.h"

#define EGRESS_VERSION "0.1.0"

#endif /* EGRESS_H */
