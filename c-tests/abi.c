/* ABI of sp.h: struct layouts, constants and macros (spec 6.1, 6.2). No daemon needed. */
#include <stdalign.h>
#include <stddef.h>

#include "check.h"

static void check_layouts(void)
{
    CHECK_INT(sizeof(scat_element), 16);
    CHECK_INT(alignof(scat_element), 8);
    CHECK_INT(offsetof(scat_element, buf), 0);
    CHECK_INT(offsetof(scat_element, len), 8);

    CHECK_INT(sizeof(scatter), 1608);
    CHECK_INT(alignof(scatter), 8);
    CHECK_INT(offsetof(scatter, num_elements), 0);
    CHECK_INT(offsetof(scatter, elements), 8);
    CHECK_INT(sizeof(((scatter *)0)->elements) / sizeof(scat_element), 100);

    CHECK_INT(sizeof(group_id), 12);
    CHECK_INT(alignof(group_id), 4);
    CHECK_INT(offsetof(group_id, id), 0);

    CHECK_INT(sizeof(vs_set_info), 8);
    CHECK_INT(alignof(vs_set_info), 4);
    CHECK_INT(offsetof(vs_set_info, num_members), 0);
    CHECK_INT(offsetof(vs_set_info, members_offset), 4);

    CHECK_INT(sizeof(membership_info), 56);
    CHECK_INT(alignof(membership_info), 4);
    CHECK_INT(offsetof(membership_info, gid), 0);
    CHECK_INT(offsetof(membership_info, changed_member), 12);
    CHECK_INT(sizeof(((membership_info *)0)->changed_member), 32);
    CHECK_INT(offsetof(membership_info, num_vs_sets), 44);
    CHECK_INT(offsetof(membership_info, my_vs_set), 48);

    CHECK_INT(sizeof(sp_time), 16);
    CHECK_INT(alignof(sp_time), 8);
    CHECK_INT(offsetof(sp_time, sec), 0);
    CHECK_INT(offsetof(sp_time, usec), 8);

    CHECK_INT(sizeof(mailbox), sizeof(int));
    CHECK_INT(sizeof(service), sizeof(int));
    /* int16/int32 are macros for short/int, usable in declarations and #ifdef. */
#if !defined(int16) || !defined(int32)
    CHECK(!"int16/int32 must be preprocessor macros");
#endif
    int16 s = -1;
    int32 i = -1;
    CHECK_INT(sizeof(s), sizeof(short));
    CHECK_INT(sizeof(i), sizeof(int));
    CHECK(s < 0 && i < 0);
}

static void check_constants(void)
{
    CHECK_INT(DEFAULT_SPREAD_PORT, 4803);
    CHECK_INT(SPREAD_VERSION, 0x05000000);
    CHECK_INT(MAX_GROUP_NAME, 32);
    CHECK_INT(MAX_PRIVATE_NAME, 10);
    CHECK_INT(MAX_PROC_NAME, 20);
    CHECK_INT(MAX_CLIENT_SCATTER_ELEMENTS, 100);

    CHECK_INT(UNRELIABLE_MESS, 0x01);
    CHECK_INT(RELIABLE_MESS, 0x02);
    CHECK_INT(FIFO_MESS, 0x04);
    CHECK_INT(CAUSAL_MESS, 0x08);
    CHECK_INT(AGREED_MESS, 0x10);
    CHECK_INT(SAFE_MESS, 0x20);
    CHECK_INT(REGULAR_MESS, 0x3f);
    CHECK_INT(SELF_DISCARD, 0x40);
    CHECK_INT(DROP_RECV, 0x01000000);
    CHECK_INT(REG_MEMB_MESS, 0x1000);
    CHECK_INT(TRANSITION_MESS, 0x2000);
    CHECK_INT(CAUSED_BY_JOIN, 0x100);
    CHECK_INT(CAUSED_BY_LEAVE, 0x200);
    CHECK_INT(CAUSED_BY_DISCONNECT, 0x400);
    CHECK_INT(CAUSED_BY_NETWORK, 0x800);
    CHECK_INT(MEMBERSHIP_MESS, 0x3f00);
    CHECK_INT((unsigned)ENDIAN_RESERVED, 0x80000080u);
    CHECK_INT(RESERVED, 0x003fc000);
    CHECK_INT(REJECT_MESS, 0x00400000);

    CHECK_INT(ACCEPT_SESSION, 1);
    CHECK_INT(ILLEGAL_SPREAD, -1);
    CHECK_INT(COULD_NOT_CONNECT, -2);
    CHECK_INT(REJECT_QUOTA, -3);
    CHECK_INT(REJECT_NO_NAME, -4);
    CHECK_INT(REJECT_ILLEGAL_NAME, -5);
    CHECK_INT(REJECT_NOT_UNIQUE, -6);
    CHECK_INT(REJECT_VERSION, -7);
    CHECK_INT(CONNECTION_CLOSED, -8);
    CHECK_INT(REJECT_AUTH, -9);
    CHECK_INT(ILLEGAL_SESSION, -11);
    CHECK_INT(ILLEGAL_SERVICE, -12);
    CHECK_INT(ILLEGAL_MESSAGE, -13);
    CHECK_INT(ILLEGAL_GROUP, -14);
    CHECK_INT(BUFFER_TOO_SHORT, -15);
    CHECK_INT(GROUPS_TOO_SHORT, -16);
    CHECK_INT(MESSAGE_TOO_LONG, -17);
    CHECK_INT(NET_ERROR_ON_SESSION, -18);
    CHECK_INT(SP_BUG, -19);
    CHECK_INT(ILLEGAL_TIME, -20);

    CHECK_INT(LOW_PRIORITY, 0);
    CHECK_INT(MEDIUM_PRIORITY, 1);
    CHECK_INT(HIGH_PRIORITY, 2);
    CHECK_INT(NUM_PRIORITY, 3);
    CHECK_INT(READ_FD, 0);
    CHECK_INT(WRITE_FD, 1);
    CHECK_INT(EXCEPT_FD, 2);
    CHECK_INT(NUM_FDTYPES, 3);
    CHECK_INT(MAX_FD_EVENTS, 2000);
#ifndef NULL
    CHECK(!"NULL must be defined");
#endif
}

static void check_macros(void)
{
    /* Single-bit tests are non-zero exactly when their bit is set. */
    CHECK(Is_unreliable_mess(UNRELIABLE_MESS) && !Is_unreliable_mess(RELIABLE_MESS));
    CHECK(Is_reliable_mess(RELIABLE_MESS) && !Is_reliable_mess(FIFO_MESS));
    CHECK(Is_fifo_mess(FIFO_MESS) && !Is_fifo_mess(CAUSAL_MESS));
    CHECK(Is_causal_mess(CAUSAL_MESS) && !Is_causal_mess(AGREED_MESS));
    CHECK(Is_agreed_mess(AGREED_MESS) && !Is_agreed_mess(SAFE_MESS));
    CHECK(Is_safe_mess(SAFE_MESS) && !Is_safe_mess(AGREED_MESS));
    CHECK(Is_self_discard(AGREED_MESS | SELF_DISCARD) && !Is_self_discard(AGREED_MESS));
    CHECK(Is_reg_memb_mess(0x1100) && !Is_reg_memb_mess(0x2000));
    CHECK(Is_transition_mess(0x2000) && !Is_transition_mess(0x1100));
    CHECK(Is_caused_join_mess(0x1100) && !Is_caused_join_mess(0x1200));
    CHECK(Is_caused_leave_mess(0x1200) && !Is_caused_leave_mess(0x1100));
    CHECK(Is_caused_disconnect_mess(0x1400) && !Is_caused_disconnect_mess(0x1800));
    CHECK(Is_caused_network_mess(0x1800) && !Is_caused_network_mess(0x1400));
    CHECK(Is_reject_mess(0x400010) && !Is_reject_mess(0x10));

    /* Regular and membership tests exclude rejects. */
    CHECK(Is_regular_mess(SAFE_MESS));
    CHECK(Is_regular_mess(FIFO_MESS | SELF_DISCARD));
    CHECK(!Is_regular_mess(REJECT_MESS | AGREED_MESS));
    CHECK(!Is_regular_mess(0x1100));
    CHECK(Is_membership_mess(0x1100));
    CHECK(Is_membership_mess(TRANSITION_MESS));
    CHECK(Is_membership_mess(CAUSED_BY_LEAVE));
    CHECK(!Is_membership_mess(REJECT_MESS | CAUSED_BY_JOIN));
    CHECK(!Is_membership_mess(AGREED_MESS));

    /* Self-leave: CAUSED_BY_LEAVE without REG_MEMB or TRANSITION. */
    CHECK(Is_self_leave(CAUSED_BY_LEAVE));
    CHECK(!Is_self_leave(REG_MEMB_MESS | CAUSED_BY_LEAVE));
    CHECK(!Is_self_leave(TRANSITION_MESS | CAUSED_BY_LEAVE));
    CHECK(!Is_self_leave(CAUSED_BY_JOIN));

    CHECK_INT(Flip_int16(0x1234), 0x3412);
    CHECK_INT((short)Flip_int16((short)0x80ff), (short)0xff80);
    CHECK_INT((unsigned)Flip_int32(0x12345678u), 0x78563412u);
    CHECK_INT((unsigned)Flip_int32(0x80000080u), 0x80000080u);
    CHECK_INT((unsigned)Flip_int32(1u), 0x01000000u);
}

int main(void)
{
    check_layouts();
    check_constants();
    check_macros();
    return finish("abi");
}
