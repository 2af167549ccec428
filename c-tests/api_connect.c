/* SP_version, SP_connect / SP_connect_timeout forms and their errors, SP_disconnect,
 * SP_kill, and the auth-method registration calls (spec 1, 2, 5.2). */
#include <ctype.h>

#include "session.h"

static char unix_name[16], tcp_name[48], host_name[48];

static void check_version(void)
{
    int major = -1, minor = -1, patch = -1;
    CHECK_INT(SP_version(&major, &minor, &patch), 1);
    CHECK_INT(major, 5);
    CHECK_INT(minor, 0);
    CHECK_INT(patch, 1);
    CHECK_INT(SP_version(NULL, &minor, &patch), 0);
    CHECK_INT(SP_version(&major, NULL, &patch), 0);
    CHECK_INT(SP_version(&major, &minor, NULL), 0);
}

/* Connect, check the private group name and disconnect again. */
static void connect_form(const char *spread_name, const char *name, const char *expected_pg)
{
    mailbox mbox = -1;
    char pg[MAX_GROUP_NAME];
    memset(pg, 'x', sizeof pg);
    int ret = SP_connect(spread_name, name, 0, 1, &mbox, pg);
    CHECK_INT(ret, ACCEPT_SESSION);
    if (ret != ACCEPT_SESSION) {
        printf("  (spread name \"%s\")\n", spread_name);
        return;
    }
    CHECK(mbox >= 0);
    CHECK_STR(pg, expected_pg);
    CHECK_INT(SP_disconnect(mbox), 0);
}

/* `#r<digits>-<digits>#<daemon>` with the invented part at most 9 characters. */
static int is_invented_name(const char *pg, const char *daemon)
{
    const char *p = pg;
    if (strncmp(p, "#r", 2) != 0)
        return 0;
    p += 2;
    const char *start = p - 1;
    if (!isdigit((unsigned char)*p))
        return 0;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p++ != '-' || !isdigit((unsigned char)*p))
        return 0;
    while (isdigit((unsigned char)*p))
        p++;
    if (p - start > 9 || *p++ != '#')
        return 0;
    return strcmp(p, daemon) == 0;
}

static void check_connect_forms(const char *daemon)
{
    char expected[64];
    snprintf(expected, sizeof expected, "#alice#%s", daemon);
    connect_form(unix_name, "alice", expected);
    connect_form(tcp_name, "alice", expected);
    connect_form(host_name, "alice", expected);

    /* Extra words after "@host" are ignored; leading white space is allowed. */
    char spaced[64];
    snprintf(spaced, sizeof spaced, "  %s ignored words", tcp_name);
    connect_form(spaced, "alice", expected);

    /* Names longer than MAX_PRIVATE_NAME are cut to 10 characters. */
    snprintf(expected, sizeof expected, "#abcdefghij#%s", daemon);
    connect_form(unix_name, "abcdefghijKLMNOP", expected);

    /* Every legal character class: 0x24..0x7E. */
    snprintf(expected, sizeof expected, "#$~Az09_.{#%s", daemon);
    connect_form(unix_name, "$~Az09_.{", expected);

    /* NULL and "" make the daemon invent a name. */
    const char *anonymous[] = {NULL, ""};
    for (int i = 0; i < 2; i++) {
        mailbox mbox;
        char pg[MAX_GROUP_NAME];
        int ret = SP_connect(unix_name, anonymous[i], 0, 0, &mbox, pg);
        CHECK_INT(ret, ACCEPT_SESSION);
        if (ret == ACCEPT_SESSION) {
            if (!is_invented_name(pg, daemon)) {
                check_failures++;
                printf("FAIL: invented private group \"%s\" has the wrong shape\n", pg);
            }
            CHECK_INT(SP_disconnect(mbox), 0);
        }
    }

    /* Two anonymous sessions at once get distinct names. */
    char pg1[MAX_GROUP_NAME], pg2[MAX_GROUP_NAME];
    mailbox m1 = connect_ok(unix_name, NULL, 0, pg1);
    mailbox m2 = connect_ok(unix_name, NULL, 0, pg2);
    CHECK(strcmp(pg1, pg2) != 0);
    CHECK(m1 != m2);
    SP_disconnect(m1);
    SP_disconnect(m2);
}

static void check_connect_errors(const char *daemon)
{
    mailbox mbox;
    char pg[MAX_GROUP_NAME];
    const char *illegal_names[] = {"a b", "a!b", "a\"b", "#ab", "tab\t", "caf\xc3\xa9", "\x7f"};
    for (size_t i = 0; i < sizeof illegal_names / sizeof *illegal_names; i++) {
        int ret = SP_connect(unix_name, illegal_names[i], 0, 0, &mbox, pg);
        if (ret != REJECT_ILLEGAL_NAME) {
            check_failures++;
            printf("FAIL: SP_connect name #%zu = %d, expected REJECT_ILLEGAL_NAME\n", i, ret);
        }
    }

    /* A name in use on this daemon is refused, also over TCP; free again after disconnect. */
    char expected[64];
    snprintf(expected, sizeof expected, "#dup#%s", daemon);
    mailbox first = connect_ok(unix_name, "dup", 0, pg);
    CHECK_STR(pg, expected);
    CHECK_INT(SP_connect(unix_name, "dup", 0, 0, &mbox, pg), REJECT_NOT_UNIQUE);
    CHECK_INT(SP_connect(tcp_name, "dup", 1, 1, &mbox, pg), REJECT_NOT_UNIQUE);
    /* Truncation happens before the uniqueness check. */
    mailbox longer = connect_ok(unix_name, "dupdupdup1", 0, pg);
    CHECK_INT(SP_connect(unix_name, "dupdupdup1X", 0, 0, &mbox, pg), REJECT_NOT_UNIQUE);
    CHECK_INT(SP_disconnect(longer), 0);
    CHECK_INT(SP_disconnect(first), 0);
    connect_form(unix_name, "dup", expected);

    /* Malformed spread names. */
    char too_long[100];
    snprintf(too_long, sizeof too_long, "%s@%0*d", unix_name, 70, 0);
    char trailing_at[24];
    snprintf(trailing_at, sizeof trailing_at, "%s@", unix_name);
    char bracketed[32];
    snprintf(bracketed, sizeof bracketed, "%s@[::1]", unix_name);
    char glued[24];
    snprintf(glued, sizeof glued, "%sx", unix_name);
    char no_at[32];
    snprintf(no_at, sizeof no_at, "%s localhost", unix_name);
    const char *bad_spread[] = {"abc", glued, bracketed, too_long, trailing_at, no_at, "@localhost"};
    for (size_t i = 0; i < sizeof bad_spread / sizeof *bad_spread; i++) {
        int ret = SP_connect(bad_spread[i], "bad", 0, 0, &mbox, pg);
        if (ret != ILLEGAL_SPREAD) {
            check_failures++;
            printf("FAIL: SP_connect(\"%s\") = %d, expected ILLEGAL_SPREAD\n", bad_spread[i], ret);
        }
    }

    /* Nobody listens on port 1. */
    CHECK_INT(SP_connect("1@127.0.0.1", "nobody", 0, 0, &mbox, pg), COULD_NOT_CONNECT);
    CHECK_INT(SP_connect("1", "nobody", 0, 0, &mbox, pg), COULD_NOT_CONNECT);
}

static void check_connect_timeout(const char *daemon)
{
    mailbox mbox;
    char pg[MAX_GROUP_NAME];
    sp_time bad[] = {{1, -1}, {-1, 1}, {0, 1000000}, {0, -1000000}, {2, 1000000}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int ret = SP_connect_timeout(unix_name, "tmo", 0, 0, &mbox, pg, bad[i]);
        if (ret != ILLEGAL_TIME) {
            check_failures++;
            printf("FAIL: SP_connect_timeout({%ld,%ld}) = %d, expected ILLEGAL_TIME\n",
                   bad[i].sec, bad[i].usec, ret);
        }
    }
    /* A negative timeout is valid and expires at once. */
    sp_time past = {-1, 0};
    CHECK_INT(SP_connect_timeout(unix_name, "tmo", 0, 0, &mbox, pg, past), CONNECTION_CLOSED);
    sp_time past_usec = {0, -1};
    CHECK_INT(SP_connect_timeout(tcp_name, "tmo", 0, 0, &mbox, pg, past_usec), CONNECTION_CLOSED);

    char expected[64];
    snprintf(expected, sizeof expected, "#tmo#%s", daemon);
    sp_time ok[] = {{0, 0}, {5, 0}, {0, 999999}, {3, 999999}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        int ret = SP_connect_timeout(i % 2 ? tcp_name : unix_name, "tmo", 0, 1, &mbox, pg, ok[i]);
        CHECK_INT(ret, ACCEPT_SESSION);
        if (ret == ACCEPT_SESSION) {
            CHECK_STR(pg, expected);
            CHECK_INT(SP_disconnect(mbox), 0);
        }
    }
    CHECK_INT(SP_connect_timeout("abc", "tmo", 0, 0, &mbox, pg, ok[1]), ILLEGAL_SPREAD);
}

static void check_disconnect_and_kill(void)
{
    char pg[MAX_GROUP_NAME], other_pg[MAX_GROUP_NAME];
    mailbox watcher = connect_ok(unix_name, "watcher", 1, pg);
    CHECK_INT(SP_join(watcher, "dk"), 0);
    message *m = malloc(sizeof *m);
    REQUIRE(m);
    CHECK_INT(recv_msg(watcher, m, 5000), 56);

    mailbox victim = connect_ok(tcp_name, "victim", 1, other_pg);
    CHECK_INT(SP_join(victim, "dk"), 0);
    CHECK_INT(recv_msg(watcher, m, 5000), 56);
    CHECK_INT(m->service_type, REG_MEMB_MESS | CAUSED_BY_JOIN);

    /* SP_kill: closes without a KILL request; the daemon notices the close. */
    SP_kill(victim);
    CHECK_INT(recv_msg(watcher, m, 5000), 56);
    CHECK_INT(m->service_type, REG_MEMB_MESS | CAUSED_BY_DISCONNECT);
    CHECK_INT(m->num_groups, 1);
    CHECK_STR(m->groups[0], pg);
    membership_info info;
    CHECK_INT(SP_get_memb_info(m->data, m->service_type, &info), 1);
    CHECK_STR(info.changed_member, other_pg);
    /* The killed mailbox is unknown now; killing it again is harmless. */
    CHECK_INT(SP_disconnect(victim), ILLEGAL_SESSION);
    SP_kill(victim);
    SP_kill(-1);

    /* SP_disconnect: the name is free again at once for a new connection. */
    victim = connect_ok(unix_name, "victim", 1, other_pg);
    CHECK_INT(SP_join(victim, "dk"), 0);
    CHECK_INT(recv_msg(watcher, m, 5000), 56);
    CHECK_INT(SP_disconnect(victim), 0);
    CHECK_INT(recv_msg(watcher, m, 5000), 56);
    CHECK_INT(m->service_type, REG_MEMB_MESS | CAUSED_BY_DISCONNECT);
    CHECK_INT(SP_get_memb_info(m->data, m->service_type, &info), 1);
    CHECK_STR(info.changed_member, other_pg);

    /* Everything on a disconnected mailbox is ILLEGAL_SESSION. */
    CHECK_INT(SP_disconnect(victim), ILLEGAL_SESSION);
    CHECK_INT(SP_join(victim, "dk"), ILLEGAL_SESSION);
    CHECK_INT(SP_leave(victim, "dk"), ILLEGAL_SESSION);
    CHECK_INT(SP_multicast(victim, AGREED_MESS, "dk", 0, 1, "x"), ILLEGAL_SESSION);
    CHECK_INT(SP_poll(victim), ILLEGAL_SESSION);
    service st = 0;
    char sender[MAX_GROUP_NAME], groups[1][MAX_GROUP_NAME], buf[8];
    int ng, em;
    int16 mt;
    CHECK_INT(SP_receive(victim, &st, sender, 1, &ng, groups, &mt, &em, sizeof buf, buf),
              ILLEGAL_SESSION);
    /* The original matches -1 against its free session slots and returns 0. */
    if (!testing_original())
        CHECK_INT(SP_disconnect(-1), ILLEGAL_SESSION);
    CHECK_INT(SP_disconnect(123456), ILLEGAL_SESSION);
    CHECK_INT(SP_disconnect(watcher), 0);
    free(m);
}

static int auth_calls, auth_last_fd;
static void *auth_last_data;
static int auth_ok(int fd, void *data)
{
    auth_calls++;
    auth_last_fd = fd;
    auth_last_data = data;
    return 1;
}
static int auth_fail(int fd, void *data)
{
    (void)fd;
    (void)data;
    auth_calls++;
    return 0;
}

static void check_auth_methods(void)
{
    mailbox mbox;
    char pg[MAX_GROUP_NAME];
    int token;

    CHECK_INT(SP_set_auth_method("NULL", auth_ok, &token), 1);
    auth_calls = 0;
    CHECK_INT(SP_connect(unix_name, "auth1", 0, 0, &mbox, pg), ACCEPT_SESSION);
    CHECK_INT(auth_calls, 1);
    CHECK_INT(auth_last_fd, mbox);
    CHECK(auth_last_data == &token);
    SP_disconnect(mbox);

    /* Invalid registrations are refused and leave the current one in place. */
    CHECK_INT(SP_set_auth_method("abcdefghijabcdefghijabcdefghij", auth_ok, NULL), 0);
    CHECK_INT(SP_set_auth_method("NULL", NULL, NULL), 0);
    const char *names[4] = {"NULL", "NULL", "NULL", "NULL"};
    int (*fns[4])(int, void *) = {auth_ok, auth_ok, auth_ok, auth_ok};
    void *datas[4] = {NULL, NULL, NULL, NULL};
    CHECK_INT(SP_set_auth_methods(4, names, fns, datas), 0);
    CHECK_INT(SP_set_auth_methods(-1, names, fns, datas), 0);

    /* A client function that fails makes the connect fail. */
    CHECK_INT(SP_set_auth_method("NULL", auth_fail, NULL), 1);
    auth_calls = 0;
    CHECK_INT(SP_connect(unix_name, "auth2", 0, 0, &mbox, pg), REJECT_AUTH);
    CHECK_INT(auth_calls, 1);

    /* A method the daemon does not offer: refused before any exchange. */
    CHECK_INT(SP_set_auth_method("FOO", auth_ok, NULL), 1);
    auth_calls = 0;
    CHECK_INT(SP_connect(unix_name, "auth3", 0, 0, &mbox, pg), REJECT_AUTH);
    CHECK_INT(auth_calls, 0);

    /* No methods at all. */
    CHECK_INT(SP_set_auth_methods(0, names, fns, datas), 1);
    CHECK_INT(SP_connect(unix_name, "auth4", 0, 0, &mbox, pg), REJECT_AUTH);
    CHECK_INT(SP_connect(tcp_name, "auth5", 0, 0, &mbox, pg), REJECT_AUTH);

    /* One method given through the plural form works again. */
    CHECK_INT(SP_set_auth_methods(1, names, fns, datas), 1);
    auth_calls = 0;
    CHECK_INT(SP_connect(unix_name, "auth6", 0, 0, &mbox, pg), ACCEPT_SESSION);
    CHECK_INT(auth_calls, 1);
    SP_disconnect(mbox);
}

int main(int argc, char **argv)
{
    watchdog(120);
    const char *port = test_port(argc, argv);
    snprintf(unix_name, sizeof unix_name, "%s", port);
    snprintf(tcp_name, sizeof tcp_name, "%s@127.0.0.1", port);
    snprintf(host_name, sizeof host_name, "%s@localhost", port);

    /* Learn the daemon name from a first connection. */
    char pg[MAX_GROUP_NAME];
    mailbox probe = connect_ok(unix_name, "probe", 0, pg);
    REQUIRE(strncmp(pg, "#probe#", 7) == 0);
    char daemon[MAX_GROUP_NAME];
    snprintf(daemon, sizeof daemon, "%s", pg + 7);
    CHECK_INT(SP_disconnect(probe), 0);

    check_version();
    check_connect_forms(daemon);
    check_connect_errors(daemon);
    check_connect_timeout(daemon);
    check_disconnect_and_kill();
    check_auth_methods();
    return finish("api_connect");
}
