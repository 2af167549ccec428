/* SP_strerror texts, SP_error output on stdout, and two threads sharing one mailbox
 * (one sending, one receiving) (spec 5.1, 5.3). */
#include <pthread.h>

#include "session.h"

static const struct {
    int code;
    const char *text;
} texts[] = {
    {ILLEGAL_SPREAD, "Illegal spread name provided."},
    {COULD_NOT_CONNECT, "Could not connect."},
    {REJECT_QUOTA, "Connection rejected, too many users."},
    {REJECT_NO_NAME, "Connection rejected, no name was supplied."},
    {REJECT_ILLEGAL_NAME, "Connection rejected, illegal name."},
    {REJECT_NOT_UNIQUE, "Connection rejected, name not unique."},
    {REJECT_VERSION, "Connection rejected, client library incompatible with daemon."},
    {CONNECTION_CLOSED, "Connection closed by Spread."},
    {REJECT_AUTH, "Connection rejected, authentication failed."},
    {ILLEGAL_SESSION, "Illegal session was supplied."},
    {ILLEGAL_SERVICE, "Illegal service request."},
    {ILLEGAL_MESSAGE, "Illegal message."},
    {ILLEGAL_GROUP, "Illegal group."},
    {BUFFER_TOO_SHORT, "Buffer too short."},
    {GROUPS_TOO_SHORT, "Groups list too short."},
    {MESSAGE_TOO_LONG, "Message (body + group names) too large."},
    {NET_ERROR_ON_SESSION, "Network socket error. SP_kill() the mailbox."},
    {SP_BUG, "Internal Spread bug detected."},
    {ILLEGAL_TIME, "Illegal time."},
    {ACCEPT_SESSION, "Unrecognized error."},
    {0, "Unrecognized error."},
    {-10, "Unrecognized error."},
    {-21, "Unrecognized error."},
    {12345, "Unrecognized error."},
};

static void check_strerror(void)
{
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        CHECK_STR(SP_strerror(texts[i].code), texts[i].text);
}

/* Run SP_error for every code with stdout redirected to a file, then compare. */
static void check_sp_error(void)
{
    char path[] = "/tmp/sp_error_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    unlink(path);
    fflush(stdout);
    int saved = dup(1);
    REQUIRE(saved >= 0 && dup2(fd, 1) == 1);
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        SP_error(texts[i].code);
    fflush(stdout);
    REQUIRE(dup2(saved, 1) == 1);
    close(saved);

    static char got[8192], expected[8192];
    size_t off = 0;
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        off += snprintf(expected + off, sizeof expected - off, "SP_error: (%d) %s\n",
                        texts[i].code, texts[i].text);
    ssize_t n = pread(fd, got, sizeof got - 1, 0);
    close(fd);
    got[n > 0 ? n : 0] = 0;
    if (strcmp(got, expected) != 0) {
        check_failures++;
        printf("FAIL: SP_error printed:\n%s---\nexpected:\n%s---\n", got, expected);
    }
}

#define THREAD_MESSAGES 300

typedef struct {
    mailbox mbox;
    const char *group;
    int sent;
} sender_args;

static void *sender_thread(void *p)
{
    sender_args *args = p;
    char buf[64];
    for (int i = 0; i < THREAD_MESSAGES; i++) {
        int len = snprintf(buf, sizeof buf, "message %d", i);
        if (SP_multicast(args->mbox, FIFO_MESS, args->group, (int16)i, len, buf) != len)
            break;
        args->sent++;
    }
    return NULL;
}

static void check_threads(const char *spread_name)
{
    char pg[MAX_GROUP_NAME];
    mailbox mbox = connect_ok(spread_name, "threads", 0, pg);
    sender_args args = {mbox, pg, 0};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, sender_thread, &args) == 0);
    static message m;
    int received = 0, in_order = 1;
    for (int i = 0; i < THREAD_MESSAGES; i++) {
        if (recv_msg(mbox, &m, 5000) <= 0)
            break;
        char expected[64];
        int len = snprintf(expected, sizeof expected, "message %d", i);
        if (m.ret != len || memcmp(m.data, expected, len) != 0 || m.mess_type != (int16)i)
            in_order = 0;
        received++;
    }
    pthread_join(t, NULL);
    CHECK_INT(args.sent, THREAD_MESSAGES);
    CHECK_INT(received, THREAD_MESSAGES);
    CHECK(in_order);
    CHECK_INT(SP_disconnect(mbox), 0);
}

int main(int argc, char **argv)
{
    watchdog(120);
    check_strerror();
    check_sp_error();
    check_threads(test_port(argc, argv));
    return finish("api_misc");
}
