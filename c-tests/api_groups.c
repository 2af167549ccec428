/* Groups: SP_join/SP_leave and their errors, membership notices and the SP_*memb*
 * accessors, every service type, SELF_DISCARD, multigroup, private groups, open
 * groups, scatter send/receive, mess_type, SP_equal_group_ids (spec 4, 5.2, 7). */
#include "session.h"

static char unix_name[16], tcp_name[48];
static message msg;

static void check_group_name_errors(mailbox mbox)
{
    char name32[40];
    memset(name32, 'g', 32);
    name32[32] = 0;
    const char *bad[] = {"", name32, "a b", "tab\tx", "bad\x80", "#x#y!", "\x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int j = SP_join(mbox, bad[i]), l = SP_leave(mbox, bad[i]);
        /* The name is checked before the mailbox. */
        int jb = SP_join(-5, bad[i]), lb = SP_leave(-5, bad[i]);
        if (j != ILLEGAL_GROUP || l != ILLEGAL_GROUP || jb != ILLEGAL_GROUP || lb != ILLEGAL_GROUP) {
            check_failures++;
            printf("FAIL: group #%zu: join %d leave %d, bad mailbox join %d leave %d; "
                   "expected ILLEGAL_GROUP\n", i, j, l, jb, lb);
        }
    }
    CHECK_INT(SP_join(-5, "fine"), ILLEGAL_SESSION);
    CHECK_INT(SP_leave(-5, "fine"), ILLEGAL_SESSION);
    /* 31 characters is the longest legal name; leaving a group not joined is ignored. */
    name32[31] = 0;
    CHECK_INT(SP_join(mbox, name32), 0);
    CHECK_INT(SP_leave(mbox, name32), 0);
    CHECK_INT(SP_leave(mbox, "never-joined"), 0);
}

/* SP_scat_get_* over a join/leave/disconnect body held in `scat`. */
static void check_scat_accessors(const scatter *scat, const membership_info *info,
                                 const char *changed)
{
    membership_info sinfo;
    memset(&sinfo, 0x33, sizeof sinfo);
    CHECK_INT(SP_scat_get_memb_info(scat, msg.service_type, &sinfo), 1);
    CHECK(SP_equal_group_ids(sinfo.gid, info->gid));
    CHECK_STR(sinfo.changed_member, changed);
    CHECK_INT(sinfo.num_vs_sets, 1);
    CHECK_INT(sinfo.my_vs_set.num_members, 1);
    CHECK_INT(sinfo.my_vs_set.members_offset, 24);
    CHECK_INT(SP_scat_get_memb_info(scat, AGREED_MESS, &sinfo), ILLEGAL_MESSAGE);
    vs_set_info ssets[1];
    unsigned int my_set = 77;
    CHECK_INT(SP_scat_get_vs_sets_info(scat, ssets, 0, &my_set), BUFFER_TOO_SHORT);
    CHECK_INT(SP_scat_get_vs_sets_info(scat, ssets, 1, &my_set), 1);
    CHECK_INT(my_set, 0);
    CHECK_INT(ssets[0].num_members, 1);
    CHECK_INT(ssets[0].members_offset, 24);
    char names[1][MAX_GROUP_NAME];
    memset(names, 0, sizeof names);
    CHECK_INT(SP_scat_get_vs_set_members(scat, &ssets[0], names, 0), BUFFER_TOO_SHORT);
    CHECK_INT(SP_scat_get_vs_set_members(scat, &ssets[0], names, 1), 1);
    CHECK_STR(names[0], changed);
}

/* Expect a regular membership notice of `cause` for `group` on `mbox`. */
static void expect_membership(mailbox mbox, const char *group, service cause, int num_members,
                              int my_index, const char *changed, int32 index, group_id *gid_out)
{
    int ret = recv_msg(mbox, &msg, 5000);
    CHECK_INT(ret, 56);
    if (ret != 56) {
        printf("  (expected membership of %s for %s)\n", group, changed);
        return;
    }
    CHECK_INT(msg.service_type, REG_MEMB_MESS | cause);
    CHECK(Is_membership_mess(msg.service_type) && Is_reg_memb_mess(msg.service_type));
    CHECK(!Is_regular_mess(msg.service_type));
    CHECK_STR(msg.sender, group);
    CHECK_INT(msg.num_groups, num_members);
    CHECK_INT(msg.mess_type, my_index);
    CHECK_INT(msg.endian_mismatch, 0);

    membership_info info;
    memset(&info, 0x55, sizeof info);
    CHECK_INT(SP_get_memb_info(msg.data, msg.service_type, &info), 1);
    CHECK_STR(info.changed_member, changed);
    CHECK_INT(info.num_vs_sets, 1);
    CHECK_INT(info.my_vs_set.num_members, 1);
    CHECK_INT(info.my_vs_set.members_offset, 24);
    CHECK_INT(info.gid.id[2], index);
    /* The body is group_id, num_vs_sets, local offset, then {count, names}. */
    group_id body_gid;
    memcpy(&body_gid, msg.data, sizeof body_gid);
    CHECK(SP_equal_group_ids(body_gid, info.gid));
    CHECK_STR(msg.data + 24, changed);

    vs_set_info sets[4];
    unsigned int my_set = 77;
    CHECK_INT(SP_get_vs_sets_info(msg.data, sets, 0, &my_set), BUFFER_TOO_SHORT);
    CHECK_INT(SP_get_vs_sets_info(msg.data, sets, 4, &my_set), 1);
    CHECK_INT(my_set, 0);
    CHECK_INT(sets[0].num_members, 1);
    CHECK_INT(sets[0].members_offset, 24);
    char names[2][MAX_GROUP_NAME];
    CHECK_INT(SP_get_vs_set_members(msg.data, &sets[0], names, 0), BUFFER_TOO_SHORT);
    CHECK_INT(SP_get_vs_set_members(msg.data, &sets[0], names, 2), 1);
    CHECK_STR(names[0], changed);

    /* The scatter variants over the body whole, and (except for the original, whose
     * scatter reader mishandles reads across elements) cut into 7-byte pieces. */
    scatter whole;
    whole.num_elements = 1;
    whole.elements[0].buf = msg.data;
    whole.elements[0].len = 56;
    check_scat_accessors(&whole, &info, changed);
    if (!testing_original()) {
        scatter pieces;
        pieces.num_elements = (56 + 6) / 7;
        for (size_t i = 0; i < pieces.num_elements; i++) {
            pieces.elements[i].buf = msg.data + 7 * i;
            pieces.elements[i].len = i + 1 < pieces.num_elements ? 7 : 56 - 7 * i;
        }
        check_scat_accessors(&pieces, &info, changed);
    }

    if (gid_out)
        *gid_out = info.gid;
}

static void expect_self_leave(mailbox mbox, const char *group)
{
    CHECK_INT(recv_msg(mbox, &msg, 5000), 0);
    CHECK_INT(msg.service_type, CAUSED_BY_LEAVE);
    CHECK(Is_self_leave(msg.service_type));
    CHECK_STR(msg.sender, group);
    CHECK_INT(msg.num_groups, 0);
    CHECK_INT(msg.mess_type, -1);
    CHECK_INT(msg.endian_mismatch, 0);
    membership_info info;
    CHECK_INT(SP_get_memb_info(msg.data, msg.service_type, &info), 1);
    CHECK_INT(info.num_vs_sets, 0);
    CHECK_INT(info.my_vs_set.num_members, 0);
    CHECK_INT(info.my_vs_set.members_offset, 0);
}

/* Expect a data message. */
static void expect_data(mailbox mbox, service st, const char *sender, int16 mess_type,
                        const char *payload, int num_groups, const char *first_group)
{
    int len = (int)strlen(payload);
    int ret = recv_msg(mbox, &msg, 5000);
    CHECK_INT(ret, len);
    if (ret != len) {
        printf("  (expected \"%s\" from %s)\n", payload, sender);
        return;
    }
    CHECK_INT(msg.service_type, st);
    CHECK(Is_regular_mess(msg.service_type));
    CHECK_STR(msg.sender, sender);
    CHECK_INT(msg.mess_type, mess_type);
    CHECK_INT(msg.endian_mismatch, 0);
    CHECK_INT(msg.num_groups, num_groups);
    if (num_groups > 0)
        CHECK_STR(msg.groups[0], first_group);
    CHECK(memcmp(msg.data, payload, len) == 0);
}

static void check_membership(void)
{
    char pa[MAX_GROUP_NAME], pb[MAX_GROUP_NAME], pc[MAX_GROUP_NAME], pd[MAX_GROUP_NAME];
    mailbox a = connect_ok(unix_name, "a1", 1, pa);
    mailbox b = connect_ok(tcp_name, "b1", 1, pb);
    mailbox c = connect_ok(unix_name, "c1", 0, pc);

    check_group_name_errors(c);

    group_id g1, g2, g3, g4;
    CHECK_INT(SP_join(a, "memb"), 0);
    expect_membership(a, "memb", CAUSED_BY_JOIN, 1, 0, pa, 1, &g1);
    CHECK_STR(msg.groups[0], pa);

    /* Joining again is ignored: the next notice is b's join. */
    CHECK_INT(SP_join(a, "memb"), 0);
    CHECK_INT(SP_join(b, "memb"), 0);
    expect_membership(a, "memb", CAUSED_BY_JOIN, 2, 0, pb, 2, &g2);
    CHECK_STR(msg.groups[0], pa);
    CHECK_STR(msg.groups[1], pb);
    expect_membership(b, "memb", CAUSED_BY_JOIN, 2, 1, pb, 2, &g3);
    CHECK(SP_equal_group_ids(g2, g3));
    CHECK(!SP_equal_group_ids(g1, g2));
    CHECK_INT(g1.id[0], g2.id[0]);
    CHECK_INT(g1.id[1], g2.id[1]);

    /* A member without the membership flag gets no notices, only data. */
    CHECK_INT(SP_join(c, "memb"), 0);
    expect_membership(a, "memb", CAUSED_BY_JOIN, 3, 0, pc, 3, NULL);
    expect_membership(b, "memb", CAUSED_BY_JOIN, 3, 1, pc, 3, NULL);
    CHECK_INT(SP_multicast(c, AGREED_MESS, "memb", 3, 5, "hello"), 5);
    expect_data(c, AGREED_MESS, pc, 3, "hello", 1, "memb");
    expect_data(a, AGREED_MESS, pc, 3, "hello", 1, "memb");
    expect_data(b, AGREED_MESS, pc, 3, "hello", 1, "memb");

    /* Leave: others see CAUSED_BY_LEAVE, the leaver a self-leave. */
    CHECK_INT(SP_leave(b, "memb"), 0);
    expect_membership(a, "memb", CAUSED_BY_LEAVE, 2, 0, pb, 4, &g4);
    CHECK_STR(msg.groups[1], pc);
    expect_self_leave(b, "memb");

    /* Disconnect of a member. */
    mailbox d = connect_ok(unix_name, "d1", 1, pd);
    CHECK_INT(SP_join(d, "memb"), 0);
    expect_membership(a, "memb", CAUSED_BY_JOIN, 3, 0, pd, 5, NULL);
    expect_membership(d, "memb", CAUSED_BY_JOIN, 3, 2, pd, 5, NULL);
    CHECK_INT(SP_disconnect(c), 0);
    expect_membership(a, "memb", CAUSED_BY_DISCONNECT, 2, 0, pc, 6, NULL);
    expect_membership(d, "memb", CAUSED_BY_DISCONNECT, 2, 1, pc, 6, NULL);

    /* A disconnect is reported once per group the departed was in. */
    CHECK_INT(SP_join(d, "memb2"), 0);
    expect_membership(d, "memb2", CAUSED_BY_JOIN, 1, 0, pd, 1, NULL);
    CHECK_INT(SP_join(a, "memb2"), 0);
    expect_membership(a, "memb2", CAUSED_BY_JOIN, 2, 0, pa, 2, NULL);
    expect_membership(d, "memb2", CAUSED_BY_JOIN, 2, 1, pa, 2, NULL);
    SP_kill(d);
    int saw_memb = 0, saw_memb2 = 0;
    for (int i = 0; i < 2; i++) {
        CHECK_INT(recv_msg(a, &msg, 5000), 56);
        CHECK_INT(msg.service_type, REG_MEMB_MESS | CAUSED_BY_DISCONNECT);
        CHECK_INT(msg.num_groups, 1);
        saw_memb += strcmp(msg.sender, "memb") == 0;
        saw_memb2 += strcmp(msg.sender, "memb2") == 0;
    }
    CHECK(saw_memb == 1 && saw_memb2 == 1);

    /* The last member leaving destroys the group: a new join starts at index 1. */
    CHECK_INT(SP_leave(a, "memb2"), 0);
    expect_self_leave(a, "memb2");
    CHECK_INT(SP_join(a, "memb2"), 0);
    expect_membership(a, "memb2", CAUSED_BY_JOIN, 1, 0, pa, 1, NULL);

    /* Notices are not regular messages: SP_get_memb_info refuses data service types. */
    membership_info info;
    CHECK_INT(SP_get_memb_info(msg.data, AGREED_MESS, &info), ILLEGAL_MESSAGE);

    CHECK(quiet_for(a, 200));
    CHECK(quiet_for(b, 0));
    SP_disconnect(a);
    SP_disconnect(b);
}

static void check_equal_group_ids(void)
{
    group_id x = {{1, 2, 3}}, y = {{1, 2, 3}}, z = {{1, 2, 4}}, w = {{0, 2, 3}}, v = {{1, 0, 3}};
    CHECK_INT(SP_equal_group_ids(x, y), 1);
    CHECK_INT(SP_equal_group_ids(x, z), 0);
    CHECK_INT(SP_equal_group_ids(x, w), 0);
    CHECK_INT(SP_equal_group_ids(x, v), 0);
}

static void check_services(void)
{
    char pa[MAX_GROUP_NAME], pb[MAX_GROUP_NAME], pc[MAX_GROUP_NAME];
    mailbox a = connect_ok(unix_name, "sa", 0, pa);
    mailbox b = connect_ok(tcp_name, "sb", 0, pb);
    mailbox c = connect_ok(unix_name, "sc", 0, pc);
    CHECK_INT(SP_join(a, "svc"), 0);
    CHECK_INT(SP_join(b, "svc"), 0);
    CHECK_INT(SP_join(a, "svc2"), 0);
    sync_self(a, pa);
    sync_self(b, pb);

    /* Each service bit is delivered unchanged, to every member including the sender. */
    const service services[] = {UNRELIABLE_MESS, RELIABLE_MESS, FIFO_MESS,
                                CAUSAL_MESS, AGREED_MESS, SAFE_MESS};
    for (int i = 0; i < 6; i++) {
        CHECK_INT(SP_multicast(a, services[i], "svc", (int16)(i + 1), 4, "data"), 4);
        expect_data(b, services[i], pa, (int16)(i + 1), "data", 1, "svc");
        expect_data(a, services[i], pa, (int16)(i + 1), "data", 1, "svc");
    }

    /* mess_type round-trips as a signed 16-bit value. */
    const int16 types[] = {-1, -2, -32768, 32767, 0x1234};
    for (int i = 0; i < 5; i++) {
        CHECK_INT(SP_multicast(a, FIFO_MESS, "svc", types[i], 2, "mt"), 2);
        expect_data(b, FIFO_MESS, pa, types[i], "mt", 1, "svc");
        expect_data(a, FIFO_MESS, pa, types[i], "mt", 1, "svc");
    }

    /* SELF_DISCARD: others get it (with the bit), the sender does not. */
    CHECK_INT(SP_multicast(a, AGREED_MESS | SELF_DISCARD, "svc", -2, 4, "disc"), 4);
    CHECK_INT(SP_multicast(a, AGREED_MESS, "svc", 9, 4, "next"), 4);
    expect_data(b, AGREED_MESS | SELF_DISCARD, pa, -2, "disc", 1, "svc");
    CHECK(Is_self_discard(msg.service_type));
    expect_data(b, AGREED_MESS, pa, 9, "next", 1, "svc");
    expect_data(a, AGREED_MESS, pa, 9, "next", 1, "svc");

    /* Unknown high bits of the service are forwarded unchanged. */
    CHECK_INT(SP_multicast(a, RELIABLE_MESS | 0x10000000, "svc", 1, 2, "hi"), 2);
    expect_data(b, RELIABLE_MESS | 0x10000000, pa, 1, "hi", 1, "svc");
    expect_data(a, RELIABLE_MESS | 0x10000000, pa, 1, "hi", 1, "svc");

    /* Open groups: a non-member sends and gets no copy; a missing group is fine. */
    CHECK_INT(SP_multicast(c, SAFE_MESS, "svc", 4, 4, "open"), 4);
    CHECK_INT(SP_multicast(c, SAFE_MESS, "nobody-here", 4, 4, "lost"), 4);
    CHECK_INT(SP_multicast(c, SAFE_MESS, pc, 5, 4, "self"), 4);
    expect_data(a, SAFE_MESS, pc, 4, "open", 1, "svc");
    expect_data(b, SAFE_MESS, pc, 4, "open", 1, "svc");
    expect_data(c, SAFE_MESS, pc, 5, "self", 1, pc);

    /* Private groups: unicast to a connection, which need not join anything. */
    CHECK_INT(SP_multicast(a, FIFO_MESS, pc, 6, 3, "uni"), 3);
    expect_data(c, FIFO_MESS, pa, 6, "uni", 1, pc);

    /* Multigroup: each connection once, with the full destination list. */
    char dests[4][MAX_GROUP_NAME];
    memset(dests, 0, sizeof dests);
    strcpy(dests[0], "svc");
    strcpy(dests[1], "svc2");
    strcpy(dests[2], "no-such-group");
    strcpy(dests[3], pc);
    CHECK_INT(SP_multigroup_multicast(a, AGREED_MESS, 4, (const char(*)[MAX_GROUP_NAME])dests,
                                      11, 5, "multi"), 5);
    CHECK_INT(SP_multicast(a, AGREED_MESS, "svc", 12, 3, "end"), 3);
    CHECK_INT(SP_multicast(a, AGREED_MESS, pc, 12, 3, "end"), 3);
    mailbox receivers[] = {a, b, c};
    for (int r = 0; r < 3; r++) {
        expect_data(receivers[r], AGREED_MESS, pa, 11, "multi", 4, "svc");
        for (int i = 1; i < 4; i++)
            CHECK_STR(msg.groups[i], dests[i]);
        expect_data(receivers[r], AGREED_MESS, pa, 12, "end", 1, r < 2 ? "svc" : pc);
    }

    /* Zero destinations: accepted, delivered to nobody. */
    CHECK_INT(SP_multigroup_multicast(a, AGREED_MESS, 0, (const char(*)[MAX_GROUP_NAME])dests,
                                      0, 4, "none"), 4);

    /* Scatter send and receive with uneven elements. */
    char part1[] = "abc", part2[] = "", part3[] = "defghij";
    scatter out;
    out.num_elements = 3;
    out.elements[0].buf = part1;
    out.elements[0].len = 3;
    out.elements[1].buf = part2;
    out.elements[1].len = 0;
    out.elements[2].buf = part3;
    out.elements[2].len = 7;
    CHECK_INT(SP_scat_multicast(a, CAUSAL_MESS, "svc", 13, &out), 10);
    CHECK_INT(SP_multigroup_scat_multicast(a, CAUSAL_MESS, 2,
                                           (const char(*)[MAX_GROUP_NAME])dests, 14, &out), 10);
    for (int k = 0; k < 2; k++) {
        char in1[4], in2[5], in3[8];
        scatter in;
        in.num_elements = 3;
        in.elements[0].buf = in1;
        in.elements[0].len = sizeof in1;
        in.elements[1].buf = in2;
        in.elements[1].len = sizeof in2;
        in.elements[2].buf = in3;
        in.elements[2].len = sizeof in3;
        service st = 0;
        char sender[MAX_GROUP_NAME], groups[4][MAX_GROUP_NAME];
        int ng = -1, em = -1;
        int16 mt = 0;
        REQUIRE(wait_readable(b, 5000));
        CHECK_INT(SP_scat_receive(b, &st, sender, 4, &ng, groups, &mt, &em, &in), 10);
        CHECK_INT(st, CAUSAL_MESS);
        CHECK_STR(sender, pa);
        CHECK_INT(ng, k ? 2 : 1);
        CHECK_INT(mt, k ? 14 : 13);
        CHECK_INT(em, 0);
        CHECK(memcmp(in1, "abcd", 4) == 0 && memcmp(in2, "efghi", 5) == 0 && in3[0] == 'j');
        CHECK_INT(recv_msg(a, &msg, 5000), 10);
        CHECK(memcmp(msg.data, "abcdefghij", 10) == 0);
    }

    /* Service errors, in the library's order. */
    CHECK_INT(SP_multicast(a, 0, "svc", 0, 1, "x"), ILLEGAL_SERVICE);
    CHECK_INT(SP_multicast(a, SELF_DISCARD, "svc", 0, 1, "x"), ILLEGAL_SERVICE);
    CHECK_INT(SP_multicast(a, REG_MEMB_MESS, "svc", 0, 1, "x"), ILLEGAL_SERVICE);
    CHECK_INT(SP_multicast(-5, 0, "svc", 0, 1, "x"), ILLEGAL_SERVICE);
    CHECK_INT(SP_multicast(-5, AGREED_MESS, "svc", 0, 1, "x"), ILLEGAL_SESSION);
    CHECK_INT(SP_scat_multicast(a, 0, "svc", 0, &out), ILLEGAL_SERVICE);
    CHECK_INT(SP_multigroup_multicast(a, 0, 1, (const char(*)[MAX_GROUP_NAME])dests, 0, 1, "x"),
              ILLEGAL_SERVICE);
    CHECK_INT(SP_multigroup_scat_multicast(-5, AGREED_MESS, 1,
                                           (const char(*)[MAX_GROUP_NAME])dests, 0, &out),
              ILLEGAL_SESSION);

    CHECK(quiet_for(a, 200));
    CHECK(quiet_for(b, 0));
    CHECK(quiet_for(c, 0));
    SP_disconnect(a);
    SP_disconnect(b);
    SP_disconnect(c);
}

int main(int argc, char **argv)
{
    watchdog(120);
    const char *port = test_port(argc, argv);
    snprintf(unix_name, sizeof unix_name, "%s", port);
    snprintf(tcp_name, sizeof tcp_name, "%s@127.0.0.1", port);
    check_equal_group_ids();
    check_membership();
    check_services();
    return finish("api_groups");
}
