/* Helpers for tests that talk to a daemon: connect with checks, receive with a
 * deadline, and one message record reused by all programs. */
#ifndef CTEST_SESSION_H
#define CTEST_SESSION_H

#include "check.h"

/* Returned by recv_msg when nothing arrived in time (not a Spread code). */
#define RECV_TIMEOUT (-1000)
#define MAX_TEST_GROUPS 100
#define MAX_TEST_MESS 160000

typedef struct {
    int ret;
    service service_type;
    char sender[MAX_GROUP_NAME];
    int num_groups;
    char groups[MAX_TEST_GROUPS][MAX_GROUP_NAME];
    int16 mess_type;
    int endian_mismatch;
    char data[MAX_TEST_MESS];
} message;

/* Connect `name` to the daemon at `spread_name`; exits if that fails. */
static inline mailbox connect_ok(const char *spread_name, const char *name, int membership,
                                 char private_group[MAX_GROUP_NAME])
{
    mailbox mbox = -1;
    int ret = SP_connect(spread_name, name, 0, membership, &mbox, private_group);
    if (ret != ACCEPT_SESSION) {
        printf("FATAL: SP_connect(%s, %s) = %d\n", spread_name, name ? name : "(null)", ret);
        SP_error(ret);
        exit(2);
    }
    return mbox;
}

/* Receive one message with full-size buffers, waiting at most `ms` for it. */
static inline int recv_msg(mailbox mbox, message *m, int ms)
{
    memset(m->sender, 0, sizeof m->sender);
    m->num_groups = -12345;
    m->mess_type = 12345;
    m->endian_mismatch = -12345;
    if (!wait_readable(mbox, ms)) {
        m->ret = RECV_TIMEOUT;
        return m->ret;
    }
    m->service_type = 0;
    m->ret = SP_receive(mbox, &m->service_type, m->sender, MAX_TEST_GROUPS, &m->num_groups,
                        m->groups, &m->mess_type, &m->endian_mismatch, MAX_TEST_MESS, m->data);
    return m->ret;
}

/* Wait until the daemon has applied this connection's earlier requests (e.g. joins): a
 * message to its own private group is ordered after them. Only for connections with
 * nothing else pending. */
static inline void sync_self(mailbox mbox, const char *private_group)
{
    static message m;
    REQUIRE(SP_multicast(mbox, AGREED_MESS, private_group, 0x7ffe, 4, "sync") == 4);
    REQUIRE(recv_msg(mbox, &m, 5000) == 4 && m.mess_type == 0x7ffe);
}

/* True if nothing arrives on `mbox` within `ms`. */
static inline int quiet_for(mailbox mbox, int ms) { return !wait_readable(mbox, ms); }

#endif
