/* Byte-exact client protocol against the daemon (spec section 8 vectors), a big-endian
 * client, and clients of older protocol versions (spec 2.6), checked from both raw
 * sockets and the library. */
#include "raw.h"

static char daemon_name[MAX_GROUP_NAME];

static void check_bytes(const unsigned char *got, const unsigned char *expected, int len,
                        const char *what)
{
    for (int i = 0; i < len; i++) {
        if (got[i] != expected[i]) {
            check_failures++;
            printf("FAIL: %s: byte %d is %02x, expected %02x\n", what, i, got[i], expected[i]);
            return;
        }
    }
}

/* A 32-byte name field. */
static void name_at(unsigned char *at, const char *name)
{
    memset(at, 0, MAX_GROUP_NAME);
    memcpy(at, name, strlen(name));
}

static void check_vectors(void)
{
    int fd = raw_connect();
    static const unsigned char request[] = {5, 0, 1, 1, 5, 'a', 'l', 'i', 'c', 'e'};
    send_bytes(fd, request, sizeof request);
    unsigned char list[6];
    REQUIRE(read_exact(fd, list, 6, 5000));
    check_bytes(list, (const unsigned char *)"\x05NULL ", 6, "auth list");
    unsigned char choice[90] = "NULL";
    send_bytes(fd, choice, sizeof choice);

    char pg[MAX_GROUP_NAME];
    int pg_len = snprintf(pg, sizeof pg, "#alice#%s", daemon_name);
    unsigned char accept[5 + MAX_GROUP_NAME];
    REQUIRE(read_exact(fd, accept, 5 + pg_len, 5000));
    unsigned char expected_accept[5 + MAX_GROUP_NAME] = {1, 5, 0, 1, (unsigned char)pg_len};
    memcpy(expected_accept + 5, pg, pg_len);
    check_bytes(accept, expected_accept, 5 + pg_len, "accept");

    /* Join g1: the 136-byte notice (group_id bytes are run-specific). */
    unsigned char join[80];
    make_header(join, 0x80010080u, pg, 1, 0x80000080u, 0);
    name_at(join + 48, "g1");
    send_bytes(fd, join, sizeof join);
    unsigned char notice[136], expected[136];
    REQUIRE(read_exact(fd, notice, 136, 5000));
    make_header(expected, 0x80001180u, "g1", 1, 0x80000080u, 56);
    name_at(expected + 48, pg);
    memcpy(expected + 80, notice + 80, 12);
    static const unsigned char sets[] = {1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0};
    memcpy(expected + 92, sets, sizeof sets);
    name_at(expected + 104, pg);
    check_bytes(notice, expected, 136, "join notice");
    int32_t index;
    memcpy(&index, notice + 88, 4);
    CHECK_INT(index, 1);

    /* AGREED "hello", mess_type 7: echoed byte for byte. */
    unsigned char hello[85], echo[85];
    make_header(hello, 0x80000090u, pg, 1, 0x80000780u, 5);
    name_at(hello + 48, "g1");
    memcpy(hello + 80, "hello", 5);
    send_bytes(fd, hello, sizeof hello);
    REQUIRE(read_exact(fd, echo, sizeof echo, 5000));
    check_bytes(echo, hello, sizeof hello, "hello echo");

    /* Leave: the 48-byte self-leave. */
    make_header(join, 0x80020080u, pg, 1, 0x80000080u, 0);
    send_bytes(fd, join, sizeof join);
    unsigned char self_leave[48];
    REQUIRE(read_exact(fd, self_leave, 48, 5000));
    make_header(expected, 0x80000280u, "g1", 0, 0x80000080u, 0);
    check_bytes(self_leave, expected, 48, "self-leave");

    /* Disconnect request: the daemon closes the connection. */
    make_header(join, 0x80040080u, pg, 1, 0x80000080u, 0);
    name_at(join + 48, pg);
    send_bytes(fd, join, sizeof join);
    unsigned char rest[64];
    CHECK_INT(read_until_eof(fd, rest, sizeof rest, 5000), 0);
    close(fd);
}

/* A raw member of `group` without membership notices. */
static int raw_member(const char *name, const char *group, char pg[MAX_GROUP_NAME])
{
    int fd = raw_session(name, pg);
    REQUIRE(fd >= 0);
    unsigned char join[80];
    make_header(join, 0x80010080u, pg, 1, 0x80000080u, 0);
    name_at(join + 48, group);
    send_bytes(fd, join, sizeof join);
    return fd;
}

static void check_big_endian_client(const char *port)
{
    char pr[MAX_GROUP_NAME], pl[MAX_GROUP_NAME], pbe[MAX_GROUP_NAME];
    int receiver = raw_member("berawrecv", "g9", pr);
    mailbox lib = connect_ok(port, "belib", 1, pl);
    CHECK_INT(SP_join(lib, "g9"), 0);
    /* Both joins are in effect once the library member sees a view of two. */
    static message m;
    for (int i = 0; i < 2; i++) {
        REQUIRE(recv_msg(lib, &m, 5000) == 56);
        if (m.num_groups == 2)
            break;
    }
    REQUIRE(m.num_groups == 2);
    int be = raw_session("bigend", pbe);
    REQUIRE(be >= 0);

    unsigned char frame[48 + 32 + 4];
    memset(frame, 0, sizeof frame);
    static const unsigned char type_be[] = {0, 0, 0, 0x20}, one_be[] = {0, 0, 0, 1},
                               hint_be[] = {0, 0x12, 0x34, 0}, len_be[] = {0, 0, 0, 4};
    memcpy(frame, type_be, 4);
    memcpy(frame + 4, pbe, strlen(pbe));
    memcpy(frame + 36, one_be, 4);
    memcpy(frame + 40, hint_be, 4);
    memcpy(frame + 44, len_be, 4);
    name_at(frame + 48, "g9");
    memcpy(frame + 80, "\x01\x02\x03\x04", 4);
    send_bytes(be, frame, sizeof frame);

    /* A little-endian raw reader: type, count and length in daemon order, hint unchanged. */
    unsigned char got[sizeof frame];
    REQUIRE(read_exact(receiver, got, sizeof got, 5000));
    static const unsigned char type_le[] = {0xa0, 0, 0, 0x80}, one_le[] = {1, 0, 0, 0},
                               len_le[] = {4, 0, 0, 0};
    check_bytes(got, type_le, 4, "foreign type");
    check_bytes(got + 4, frame + 4, 32, "foreign sender");
    check_bytes(got + 36, one_le, 4, "foreign num_groups");
    check_bytes(got + 40, hint_be, 4, "foreign hint");
    check_bytes(got + 44, len_le, 4, "foreign data_len");
    check_bytes(got + 48, frame + 48, 36, "foreign names and payload");

    /* The library reports the sender's mess_type and the mismatch. */
    CHECK_INT(recv_msg(lib, &m, 5000), 4);
    CHECK_INT(m.service_type, SAFE_MESS);
    CHECK_STR(m.sender, pbe);
    CHECK_INT(m.mess_type, 0x1234);
    CHECK_INT(m.endian_mismatch, 1);
    CHECK(memcmp(m.data, "\x01\x02\x03\x04", 4) == 0);

    /* The library's own encoding of a negative mess_type and SELF_DISCARD. */
    CHECK_INT(SP_multicast(lib, AGREED_MESS | SELF_DISCARD, "g9", -2, 1, "n"), 1);
    unsigned char mine[48 + 32 + 1];
    REQUIRE(read_exact(receiver, mine, sizeof mine, 5000));
    static const unsigned char type_sd[] = {0xd0, 0, 0, 0x80}, hint_neg[] = {0x80, 0xfe, 0xff, 0x80};
    check_bytes(mine, type_sd, 4, "SELF_DISCARD type");
    check_bytes(mine + 40, hint_neg, 4, "mess_type -2 hint");

    CHECK(quiet_for(lib, 200));
    SP_disconnect(lib);
    close(be);
    close(receiver);
}

/* A client of an older version: connect request without some fields, no auth exchange. */
static void check_old_client(const unsigned char *request, int len, const unsigned char *accept_head,
                             int head_len, const char *name, const char *what)
{
    int fd = raw_connect();
    send_bytes(fd, request, len);
    char pg[MAX_GROUP_NAME];
    int pg_len = snprintf(pg, sizeof pg, "#%s#%s", name, daemon_name);
    unsigned char got[8 + MAX_GROUP_NAME];
    if (!read_exact(fd, got, head_len + 1 + pg_len, 5000)) {
        check_failures++;
        printf("FAIL: %s: no accept\n", what);
        close(fd);
        return;
    }
    check_bytes(got, accept_head, head_len, what);
    CHECK_INT(got[head_len], pg_len);
    CHECK(memcmp(got + head_len + 1, pg, pg_len) == 0);

    /* The session works: a message to itself comes back. */
    unsigned char frame[48 + 32 + 2], echo[sizeof frame];
    make_header(frame, 0x80000084u, pg, 1, 0x80000080u, 2);
    name_at(frame + 48, pg);
    memcpy(frame + 80, "ok", 2);
    send_bytes(fd, frame, sizeof frame);
    CHECK(read_exact(fd, echo, sizeof echo, 5000) && memcmp(echo, frame, sizeof frame) == 0);
    close(fd);
}

static void check_old_versions(void)
{
    static const unsigned char v314[] = {3, 14, 0, 5, 'o', 'l', 'd', '1', '4'};
    static const unsigned char head314[] = {1, 5, 0};
    check_old_client(v314, sizeof v314, head314, sizeof head314, "old14", "3.14 client");

    static const unsigned char v315[] = {3, 15, 2, 0, 5, 'o', 'l', 'd', '1', '5'};
    static const unsigned char head315[] = {1, 5, 0, 1};
    check_old_client(v315, sizeof v315, head315, sizeof head315, "old15", "3.15 client");

    static const unsigned char v300[] = {3, 0, 0, 3, 'o', 'l', 'd'};
    int fd = raw_connect();
    send_bytes(fd, v300, sizeof v300);
    unsigned char buf[8];
    CHECK_INT(read_until_eof(fd, buf, sizeof buf, 5000), 1);
    CHECK_INT(buf[0], 0xf9);
    close(fd);
}

int main(int argc, char **argv)
{
    watchdog(60);
    const char *port = test_port(argc, argv);
    raw_set_port(port);
    char pg[MAX_GROUP_NAME];
    mailbox probe = connect_ok(port, "rawprobe", 0, pg);
    snprintf(daemon_name, sizeof daemon_name, "%s", pg + strlen("#rawprobe#"));
    SP_disconnect(probe);

    check_vectors();
    check_big_endian_client(port);
    check_old_versions();
    return finish("raw_clients");
}
