/* The library's side of the wire, against a scripted fake daemon on a Unix socket: exact
 * request bytes (spec 2, 3.5, 8), reject and malformed handshake replies, a foreign-order
 * daemon's messages (spec 4.6), malformed headers and a closed connection (spec 4.5).
 * Uses the Unix socket of port argv[1] + 1, which no real daemon serves. */
#include <pthread.h>

#include "raw.h"

static int listen_fd;
static char spread_name[16];

/* The fake daemon's side of one connection: accept and hand the fd to a script. */
static int fake_accept(void)
{
    if (!wait_readable(listen_fd, 5000))
        return -1;
    return accept(listen_fd, NULL, NULL);
}

static void expect_bytes(int fd, const unsigned char *expected, int len, const char *what)
{
    unsigned char got[256];
    REQUIRE(len <= (int)sizeof got);
    if (!read_exact(fd, got, len, 5000)) {
        check_failures++;
        printf("FAIL: %s: fewer than %d bytes arrived\n", what, len);
        return;
    }
    for (int i = 0; i < len; i++) {
        if (got[i] != expected[i]) {
            check_failures++;
            printf("FAIL: %s: byte %d is %02x, expected %02x\n", what, i, got[i], expected[i]);
            return;
        }
    }
}

static const char alice_pg[] = "#alice#localhost";

/* Standard daemon side of a handshake for "alice" with membership `flags`. */
static int fake_handshake(unsigned char flags)
{
    int fd = fake_accept();
    if (fd < 0)
        return -1;
    unsigned char request[] = {5, 0, 1, flags, 5, 'a', 'l', 'i', 'c', 'e'};
    expect_bytes(fd, request, sizeof request, "connect request");
    send_bytes(fd, "\x05NULL ", 6);
    unsigned char choice[90] = "NULL";
    expect_bytes(fd, choice, sizeof choice, "auth choice");
    unsigned char accept_msg[5 + 16] = {1, 5, 0, 1, 16};
    memcpy(accept_msg + 5, alice_pg, 16);
    send_bytes(fd, accept_msg, sizeof accept_msg);
    return fd;
}

/* A request frame as the library must write it (little-endian host). */
static void request_frame(unsigned char *f, uint32_t type, uint32_t hint, const char *group,
                          int32_t data_len)
{
    make_header(f, type, alice_pg, 1, hint, data_len);
    memset(f + 48, 0, 32);
    memcpy(f + 48, group, strlen(group));
}

static void *fake_daemon(void *arg)
{
    (void)arg;
    unsigned char f[256];

    /* 1: the section 8 session. */
    int fd = fake_handshake(0x01);
    REQUIRE(fd >= 0);
    request_frame(f, 0x80010080u, 0x80000080u, "g1", 0);
    expect_bytes(fd, f, 80, "join g1");
    request_frame(f, 0x80000090u, 0x80000780u, "g1", 5);
    memcpy(f + 80, "hello", 5);
    expect_bytes(fd, f, 85, "AGREED hello");
    request_frame(f, 0x800000d0u, 0x80fffe80u, "g1", 1);
    f[80] = 'n';
    expect_bytes(fd, f, 81, "SELF_DISCARD, mess_type -2");
    request_frame(f, 0x80020080u, 0x80000080u, "g1", 0);
    expect_bytes(fd, f, 80, "leave g1");
    /* A foreign-order (big-endian) daemon: a join notice with every integer swapped. */
    unsigned char notice[136];
    memset(notice, 0, sizeof notice);
    static const unsigned char be_type[] = {0, 0, 0x11, 0}, be_one[] = {0, 0, 0, 1},
                               be_len[] = {0, 0, 0, 56}, be_gid[] = {0, 0, 0, 7, 0, 0, 0, 8, 0, 0, 0, 9},
                               be_sets[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
    memcpy(notice, be_type, 4);
    memcpy(notice + 4, "g1", 2);
    memcpy(notice + 36, be_one, 4);
    memcpy(notice + 44, be_len, 4);
    memcpy(notice + 48, alice_pg, 16);
    memcpy(notice + 80, be_gid, 12);
    memcpy(notice + 92, be_sets, 12);
    memcpy(notice + 104, alice_pg, 16);
    send_bytes(fd, notice, sizeof notice);
    /* ... and a big-endian data message with mess_type 0x1234. */
    unsigned char data[48 + 32 + 4];
    memset(data, 0, sizeof data);
    static const unsigned char be_safe[] = {0, 0, 0, 0x20}, be_hint[] = {0, 0x12, 0x34, 0},
                               be_four[] = {0, 0, 0, 4};
    memcpy(data, be_safe, 4);
    memcpy(data + 4, "#bob#far", 8);
    memcpy(data + 36, be_one, 4);
    memcpy(data + 40, be_hint, 4);
    memcpy(data + 44, be_four, 4);
    memcpy(data + 48, "g1", 2);
    memcpy(data + 80, "\x01\x02\x03\x04", 4);
    send_bytes(fd, data, sizeof data);
    /* SP_disconnect: the kill request naming the private group, then the close. The
     * original leaves stack bytes after the name's NUL, so those are not compared. */
    request_frame(f, 0x80040080u, 0x80000080u, alice_pg, 0);
    expect_bytes(fd, f, 48 + sizeof alice_pg, "disconnect");
    unsigned char rest[32 - sizeof alice_pg];
    CHECK(read_exact(fd, rest, sizeof rest, 5000));
    close(fd);

    /* A header with a negative group count. */
    fd = fake_handshake(0x01);
    REQUIRE(fd >= 0);
    make_header(f, 0x80000090u, "#bob#far", -1, 0x80000080u, 0);
    send_bytes(fd, f, 48);
    read_until_eof(fd, f, sizeof f, 5000);
    close(fd);

    /* 2: priority 1 without membership sets flag 0x10; the daemon then closes. */
    fd = fake_handshake(0x10);
    REQUIRE(fd >= 0);
    close(fd);

    /* 3..7: handshake replies the library must refuse. */
    static const struct {
        const unsigned char *reply;
        int len;
        int after_choice;
    } refusals[] = {
        {(const unsigned char *)"\xfa", 1, 0},                     /* REJECT_NOT_UNIQUE */
        {(const unsigned char *)"\x5b", 1, 0},                     /* list of 91 bytes */
        {(const unsigned char *)"\x05" "FOO  ", 6, 0},             /* no NULL method */
        {(const unsigned char *)"\xf7", 1, 1},                     /* REJECT_AUTH after choice */
        {(const unsigned char *)"\x01\x05\x00\x01\x20", 5, 1},      /* name length 32 */
        {(const unsigned char *)"\x01\x05\x00\x01\x10#ali", 9, 1}, /* name cut short */
    };
    for (size_t i = 0; i < sizeof refusals / sizeof *refusals; i++) {
        fd = fake_accept();
        REQUIRE(fd >= 0);
        unsigned char req[10];
        REQUIRE(read_exact(fd, req, 10, 5000));
        if (refusals[i].after_choice) {
            send_bytes(fd, "\x05NULL ", 6);
            unsigned char choice[90];
            REQUIRE(read_exact(fd, choice, 90, 5000));
        }
        send_bytes(fd, refusals[i].reply, refusals[i].len);
        close(fd);
    }
    return NULL;
}

static void check_session(void)
{
    mailbox mbox;
    char pg[MAX_GROUP_NAME];
    int ret = SP_connect(spread_name, "alice", 0, 1, &mbox, pg);
    if (ret != ACCEPT_SESSION) {
        printf("FATAL: SP_connect to the fake daemon at %s = %d\n", socket_path, ret);
        exit(2);
    }
    CHECK_STR(pg, alice_pg);
    CHECK_INT(SP_join(mbox, "g1"), 0);
    CHECK_INT(SP_multicast(mbox, AGREED_MESS, "g1", 7, 5, "hello"), 5);
    CHECK_INT(SP_multicast(mbox, AGREED_MESS | SELF_DISCARD, "g1", -2, 1, "n"), 1);
    CHECK_INT(SP_leave(mbox, "g1"), 0);

    static message m;
    CHECK_INT(recv_msg(mbox, &m, 5000), 56);
    CHECK_INT(m.service_type, REG_MEMB_MESS | CAUSED_BY_JOIN);
    CHECK_STR(m.sender, "g1");
    CHECK_INT(m.num_groups, 1);
    CHECK_STR(m.groups[0], alice_pg);
    CHECK_INT(m.mess_type, 0);
    CHECK_INT(m.endian_mismatch, 0);
    /* The body's integers are swapped in place to this host's order. */
    membership_info info;
    CHECK_INT(SP_get_memb_info(m.data, m.service_type, &info), 1);
    CHECK(info.gid.id[0] == 7 && info.gid.id[1] == 8 && info.gid.id[2] == 9);
    CHECK_INT(info.num_vs_sets, 1);
    CHECK_INT(info.my_vs_set.num_members, 1);
    CHECK_INT(info.my_vs_set.members_offset, 24);
    CHECK_STR(info.changed_member, alice_pg);

    CHECK_INT(recv_msg(mbox, &m, 5000), 4);
    CHECK_INT(m.service_type, SAFE_MESS);
    CHECK_STR(m.sender, "#bob#far");
    CHECK_INT(m.mess_type, 0x1234);
    CHECK_INT(m.endian_mismatch, 1);
    CHECK(memcmp(m.data, "\x01\x02\x03\x04", 4) == 0);

    CHECK_INT(SP_disconnect(mbox), 0);

    REQUIRE(SP_connect(spread_name, "alice", 0, 1, &mbox, pg) == ACCEPT_SESSION);
    CHECK_INT(recv_msg(mbox, &m, 5000), ILLEGAL_MESSAGE);
    CHECK_INT(SP_disconnect(mbox), 0);

    /* The daemon closes right after accepting: CONNECTION_CLOSED, then NET_ERROR_ON_SESSION. */
    REQUIRE(SP_connect(spread_name, "alice", 1, 0, &mbox, pg) == ACCEPT_SESSION);
    CHECK_INT(recv_msg(mbox, &m, 5000), CONNECTION_CLOSED);
    CHECK_INT(recv_msg(mbox, &m, 0), NET_ERROR_ON_SESSION);
    CHECK_INT(SP_multicast(mbox, AGREED_MESS, "g1", 0, 1, "x"), NET_ERROR_ON_SESSION);
    CHECK_INT(SP_poll(mbox), 0);
    CHECK_INT(SP_disconnect(mbox), 0);

    const int expected[] = {REJECT_NOT_UNIQUE, CONNECTION_CLOSED, REJECT_AUTH,
                            REJECT_AUTH,       CONNECTION_CLOSED, CONNECTION_CLOSED};
    for (size_t i = 0; i < sizeof expected / sizeof *expected; i++) {
        int ret = SP_connect(spread_name, "alice", 0, 1, &mbox, pg);
        if (ret != expected[i]) {
            check_failures++;
            printf("FAIL: refused handshake #%zu: SP_connect = %d, expected %d\n", i, ret,
                   expected[i]);
        }
    }
}

int main(int argc, char **argv)
{
    watchdog(60);
    int port = atoi(test_port(argc, argv)) + 1;
    snprintf(spread_name, sizeof spread_name, "%d", port);
    raw_set_port(spread_name);

    listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(listen_fd >= 0);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path);
    REQUIRE(bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) == 0);
    REQUIRE(listen(listen_fd, 8) == 0);

    pthread_t daemon_thread;
    REQUIRE(pthread_create(&daemon_thread, NULL, fake_daemon, NULL) == 0);
    check_session();
    pthread_join(daemon_thread, NULL);
    close(listen_fd);
    unlink(socket_path);
    return finish("lib_wire");
}
