//! The committed C headers (`include/`) are the ones build.rs generates from the Rust sources,
//! and they compile and define what Spread 5.0.1's headers define.

use std::path::{Path, PathBuf};
use std::process::Command;

const HEADERS: [&str; 3] = ["sp.h", "sp_events.h", "sp_func.h"];

fn committed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

#[test]
fn committed_headers_are_current() {
    let generated_dir = Path::new(env!("OUT_DIR")).join("include");
    for name in HEADERS {
        let generated = std::fs::read_to_string(generated_dir.join(name)).expect("generated header");
        let committed = std::fs::read_to_string(committed_dir().join(name)).unwrap_or_default();
        assert!(
            generated == committed,
            "include/{name} is stale; refresh with `SPREAD_UPDATE_HEADERS=1 cargo build` and commit include/"
        );
    }
}

/// Values from spec 6.1 and 5.3; types and prototypes as the original headers give them.
const CHECKS: &str = r#"
#include "sp.h"
#ifndef int16
#error "int16 must be a macro"
#endif
#ifndef int32
#error "int32 must be a macro"
#endif
#define IS_INT(x) _Generic((x), int: 1, default: 0)
#define IS_UNSIGNED(x) _Generic((x), unsigned int: 1, default: 0)
_Static_assert(IS_UNSIGNED(ENDIAN_RESERVED) && ENDIAN_RESERVED == 0x80000080u, "ENDIAN_RESERVED");
_Static_assert(IS_INT(UNRELIABLE_MESS) && IS_INT(DROP_RECV) && IS_INT(ILLEGAL_TIME), "int constants");
_Static_assert(UNRELIABLE_MESS == 1 && RELIABLE_MESS == 2 && FIFO_MESS == 4 && CAUSAL_MESS == 8
    && AGREED_MESS == 0x10 && SAFE_MESS == 0x20 && REGULAR_MESS == 0x3f && SELF_DISCARD == 0x40
    && DROP_RECV == 0x01000000 && REG_MEMB_MESS == 0x1000 && TRANSITION_MESS == 0x2000
    && CAUSED_BY_JOIN == 0x100 && CAUSED_BY_LEAVE == 0x200 && CAUSED_BY_DISCONNECT == 0x400
    && CAUSED_BY_NETWORK == 0x800 && MEMBERSHIP_MESS == 0x3f00 && RESERVED == 0x003fc000
    && REJECT_MESS == 0x00400000, "service bits");
_Static_assert(ACCEPT_SESSION == 1 && ILLEGAL_SPREAD == -1 && COULD_NOT_CONNECT == -2
    && REJECT_QUOTA == -3 && REJECT_NO_NAME == -4 && REJECT_ILLEGAL_NAME == -5
    && REJECT_NOT_UNIQUE == -6 && REJECT_VERSION == -7 && CONNECTION_CLOSED == -8
    && REJECT_AUTH == -9 && ILLEGAL_SESSION == -11 && ILLEGAL_SERVICE == -12
    && ILLEGAL_MESSAGE == -13 && ILLEGAL_GROUP == -14 && BUFFER_TOO_SHORT == -15
    && GROUPS_TOO_SHORT == -16 && MESSAGE_TOO_LONG == -17 && NET_ERROR_ON_SESSION == -18
    && SP_BUG == -19 && ILLEGAL_TIME == -20, "result codes");
_Static_assert(DEFAULT_SPREAD_PORT == 4803 && SPREAD_VERSION == 0x05000000 && MAX_GROUP_NAME == 32
    && MAX_PRIVATE_NAME == 10 && MAX_PROC_NAME == 20 && MAX_CLIENT_SCATTER_ELEMENTS == 100,
    "limits");
_Static_assert(LOW_PRIORITY == 0 && MEDIUM_PRIORITY == 1 && HIGH_PRIORITY == 2 && NUM_PRIORITY == 3
    && READ_FD == 0 && WRITE_FD == 1 && EXCEPT_FD == 2 && NUM_FDTYPES == 3
    && MAX_FD_EVENTS == 2000, "event constants");
_Static_assert(Flip_int16(0x1234) == 0x3412 && Flip_int32(0x12345678u) == 0x78563412u, "flips");
_Static_assert(Is_regular_mess(SAFE_MESS) && !Is_regular_mess(SAFE_MESS | REJECT_MESS)
    && Is_membership_mess(REG_MEMB_MESS) && !Is_membership_mess(REG_MEMB_MESS | REJECT_MESS)
    && Is_self_leave(CAUSED_BY_LEAVE) && !Is_self_leave(CAUSED_BY_LEAVE | REG_MEMB_MESS)
    && Is_caused_join_mess(CAUSED_BY_JOIN) && Is_reject_mess(REJECT_MESS)
    && Is_self_discard(SELF_DISCARD) && Is_transition_mess(TRANSITION_MESS), "test macros");
_Static_assert(sizeof(scatter) == 1608 && sizeof(scat_element) == 16 && sizeof(group_id) == 12
    && sizeof(vs_set_info) == 8 && sizeof(membership_info) == 56 && sizeof(sp_time) == 16
    && sizeof(mailbox) == sizeof(int) && sizeof(service) == sizeof(int), "layouts");

static void on_timer(int code, void *data) { (void)code; (void)data; }
static void on_fd(int fd, int code, void *data) { (void)fd; (void)code; (void)data; }

/* Assigning each function to a pointer of the original prototype checks type compatibility. */
int main(void)
{
    int (*attach)(int, int, void (*)(int, int, void *), int, void *, int) = E_attach_fd;
    int (*queue)(void (*)(int, void *), int, void *, sp_time) = E_queue;
    int (*timer_op)(void (*)(int, void *), int, void *) = E_dequeue;
    sp_time (*time_op)(sp_time, sp_time) = E_add_time;
    sp_time (*clock)(void) = E_get_time_monotonic;
    int (*fd_op)(int, int) = E_detach_fd;
    int (*prio_op)(int) = E_num_active;
    void (*loop_op)(void) = E_exit_events_async_safe;
    void *nothing = NULL;
    sp_time t = { 1, 0 };
    timer_op = E_in_queue;
    time_op = E_sub_time;
    clock = E_get_time;
    fd_op = E_activate_fd;
    fd_op = E_deactivate_fd;
    prio_op = E_set_active_threshold;
    loop_op = E_handle_events;
    loop_op = E_exit_events;
    (void)attach(0, READ_FD, on_fd, 0, nothing, HIGH_PRIORITY);
    (void)queue(on_timer, 0, nothing, t);
    (void)timer_op(on_timer, 0, nothing);
    (void)time_op(clock(), E_neg_time(t));
    (void)E_compare_time(t, t);
    (void)E_detach_fd_priority(0, READ_FD, LOW_PRIORITY);
    E_delay(t);
    loop_op();
    return E_init() + fd_op(0, 0) + prio_op(0);
}
"#;

#[test]
fn headers_compile_as_c_with_spread_5_definitions() {
    let dir = std::env::temp_dir().join(format!("spread-headers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("checks.c");
    std::fs::write(&source, CHECKS).unwrap();
    let output = Command::new("cc")
        .args([
            "-std=c11",
            "-pedantic",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsyntax-only",
            "-I",
        ])
        .arg(committed_dir())
        .arg(&source)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let output = output.unwrap_or_else(|e| panic!("running cc: {e}"));
    assert!(
        output.status.success(),
        "cc rejects the headers:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
