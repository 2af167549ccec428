/* The E_* event loop: return codes, timers, time arithmetic, and an interactive-style
 * session like the original's example user program, driven by scripted commands fed
 * through a pipe (LOW priority) while the mailbox is watched at HIGH priority (spec 5.4). */
#include <sys/time.h>

#include "session.h"

static void noop_fd(int fd, int code, void *data)
{
    (void)fd;
    (void)code;
    (void)data;
}

static void check_fd_table(void)
{
    int p[2], q[2];
    REQUIRE(pipe(p) == 0 && pipe(q) == 0);
    CHECK_INT(E_init(), 0);

    CHECK_INT(E_attach_fd(p[0], READ_FD, noop_fd, 0, NULL, LOW_PRIORITY), 0);
    CHECK_INT(E_attach_fd(p[0], READ_FD, noop_fd, 1, NULL, LOW_PRIORITY), 1);
    CHECK_INT(E_attach_fd(p[0], READ_FD, noop_fd, 0, NULL, 3), -1);
    CHECK_INT(E_attach_fd(p[0], READ_FD, noop_fd, 0, NULL, -1), -1);
    CHECK_INT(E_attach_fd(p[0], 3, noop_fd, 0, NULL, LOW_PRIORITY), -1);
    CHECK_INT(E_attach_fd(p[0], -1, noop_fd, 0, NULL, LOW_PRIORITY), -1);
    CHECK_INT(E_attach_fd(-1, READ_FD, noop_fd, 0, NULL, LOW_PRIORITY), -1);
    CHECK_INT(E_num_active(LOW_PRIORITY), 1);
    CHECK_INT(E_num_active(MEDIUM_PRIORITY), 0);
    CHECK_INT(E_num_active(HIGH_PRIORITY), 0);
    CHECK_INT(E_num_active(NUM_PRIORITY), -1);
    CHECK_INT(E_num_active(-1), -1);

    CHECK_INT(E_deactivate_fd(p[0], READ_FD), 0);
    CHECK_INT(E_num_active(LOW_PRIORITY), 0);
    CHECK_INT(E_activate_fd(p[0], READ_FD), 0);
    CHECK_INT(E_num_active(LOW_PRIORITY), 1);
    CHECK_INT(E_deactivate_fd(q[0], READ_FD), -1);
    CHECK_INT(E_activate_fd(q[0], READ_FD), -1);
    CHECK_INT(E_deactivate_fd(p[0], WRITE_FD), -1);

    CHECK_INT(E_set_active_threshold(HIGH_PRIORITY), HIGH_PRIORITY);
    CHECK_INT(E_set_active_threshold(NUM_PRIORITY), -1);
    CHECK_INT(E_set_active_threshold(LOW_PRIORITY), LOW_PRIORITY);

    /* The same fd at two priorities; E_detach_fd removes both. */
    CHECK_INT(E_attach_fd(p[0], READ_FD, noop_fd, 0, NULL, HIGH_PRIORITY), 0);
    CHECK_INT(E_num_active(HIGH_PRIORITY), 1);
    CHECK_INT(E_detach_fd(p[0], READ_FD), 0);
    CHECK_INT(E_num_active(LOW_PRIORITY), 0);
    CHECK_INT(E_num_active(HIGH_PRIORITY), 0);
    CHECK_INT(E_detach_fd(p[0], READ_FD), -1);

    /* Per-priority detach. */
    CHECK_INT(E_attach_fd(q[1], WRITE_FD, noop_fd, 0, NULL, MEDIUM_PRIORITY), 0);
    CHECK_INT(E_attach_fd(q[0], EXCEPT_FD, noop_fd, 0, NULL, MEDIUM_PRIORITY), 0);
    CHECK_INT(E_num_active(MEDIUM_PRIORITY), 2);
    CHECK_INT(E_detach_fd_priority(q[1], WRITE_FD, LOW_PRIORITY), -1);
    CHECK_INT(E_detach_fd_priority(q[1], READ_FD, MEDIUM_PRIORITY), -1);
    CHECK_INT(E_detach_fd_priority(q[1], WRITE_FD, MEDIUM_PRIORITY), 0);
    CHECK_INT(E_num_active(MEDIUM_PRIORITY), 1);
    CHECK_INT(E_detach_fd(q[0], EXCEPT_FD), 0);
    CHECK_INT(E_num_active(MEDIUM_PRIORITY), 0);

    /* E_init clears the table. */
    CHECK_INT(E_attach_fd(p[0], READ_FD, noop_fd, 0, NULL, LOW_PRIORITY), 0);
    CHECK_INT(E_init(), 0);
    CHECK_INT(E_num_active(LOW_PRIORITY), 0);
    CHECK_INT(E_detach_fd(p[0], READ_FD), -1);

    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
}

static void check_time_arithmetic(void)
{
    sp_time t;
    t = E_add_time((sp_time){1, 900000}, (sp_time){0, 200000});
    CHECK(t.sec == 2 && t.usec == 100000);
    t = E_add_time((sp_time){1, 0}, (sp_time){-2, -500000});
    CHECK(t.sec == -1 && t.usec == -500000);
    t = E_sub_time((sp_time){1, 100000}, (sp_time){0, 200000});
    CHECK(t.sec == 0 && t.usec == 900000);
    t = E_sub_time((sp_time){0, 0}, (sp_time){1, 500000});
    CHECK(t.sec == -1 && t.usec == -500000);
    t = E_sub_time((sp_time){5, 5}, (sp_time){5, 5});
    CHECK(t.sec == 0 && t.usec == 0);
    t = E_neg_time((sp_time){1, 5});
    CHECK(t.sec == -1 && t.usec == -5);
    CHECK_INT(E_compare_time((sp_time){1, 0}, (sp_time){0, 999999}), 1);
    CHECK_INT(E_compare_time((sp_time){0, 999999}, (sp_time){1, 0}), -1);
    CHECK_INT(E_compare_time((sp_time){3, 7}, (sp_time){3, 7}), 0);
    CHECK_INT(E_compare_time((sp_time){3, 7}, (sp_time){3, 8}), -1);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    t = E_get_time();
    CHECK(t.sec >= tv.tv_sec && t.sec <= tv.tv_sec + 2);
    CHECK(t.usec >= 0 && t.usec < 1000000);

    sp_time before = E_get_time_monotonic();
    E_delay((sp_time){0, 30000});
    sp_time after = E_get_time_monotonic();
    sp_time slept = E_sub_time(after, before);
    CHECK(E_compare_time(slept, (sp_time){0, 29000}) >= 0);
    CHECK(E_compare_time(slept, (sp_time){2, 0}) < 0);
}

static int fired[8], fire_order[8], fire_count;

static void timer_cb(int code, void *data)
{
    (void)data;
    if (code >= 0 && code < 8)
        fired[code]++;
    if (fire_count < 8)
        fire_order[fire_count++] = code;
}

static void exit_cb(int code, void *data)
{
    (void)code;
    (void)data;
    E_exit_events();
}

static int pipe_reads;
static void pipe_byte_cb(int fd, int code, void *data)
{
    (void)code;
    (void)data;
    char c;
    if (read(fd, &c, 1) == 1)
        pipe_reads++;
    if (pipe_reads == 3)
        E_exit_events();
}

static void check_timers(void)
{
    CHECK_INT(E_init(), 0);
    memset(fired, 0, sizeof fired);
    fire_count = 0;
    CHECK_INT(E_queue(timer_cb, 1, NULL, (sp_time){0, 30000}), 0);
    CHECK_INT(E_queue(timer_cb, 2, NULL, (sp_time){0, 10000}), 0);
    CHECK_INT(E_queue(timer_cb, 3, NULL, (sp_time){0, 20000}), 0);
    /* Same (callback, code, data): replaces the pending one. */
    CHECK_INT(E_queue(timer_cb, 3, NULL, (sp_time){0, 50000}), 0);
    CHECK_INT(E_in_queue(timer_cb, 3, NULL), 1);
    CHECK_INT(E_in_queue(timer_cb, 3, &fired), 0);
    CHECK_INT(E_queue(timer_cb, 4, NULL, (sp_time){5, 0}), 0);
    CHECK_INT(E_dequeue(timer_cb, 4, NULL), 0);
    CHECK_INT(E_dequeue(timer_cb, 4, NULL), -1);
    CHECK_INT(E_in_queue(timer_cb, 4, NULL), 0);
    CHECK_INT(E_queue(exit_cb, 0, NULL, (sp_time){0, 80000}), 0);

    sp_time start = E_get_time_monotonic();
    E_handle_events();
    sp_time took = E_sub_time(E_get_time_monotonic(), start);
    CHECK(E_compare_time(took, (sp_time){0, 79000}) >= 0);
    CHECK(E_compare_time(took, (sp_time){3, 0}) < 0);
    CHECK_INT(fire_count, 3);
    CHECK(fire_order[0] == 2 && fire_order[1] == 1 && fire_order[2] == 3);
    CHECK(fired[1] == 1 && fired[2] == 1 && fired[3] == 1 && fired[4] == 0);
    CHECK_INT(E_in_queue(timer_cb, 3, NULL), 0);
    CHECK_INT(E_in_queue(exit_cb, 0, NULL), 0);

    /* The loop can be entered again; fds are level-triggered. */
    int p[2];
    REQUIRE(pipe(p) == 0);
    CHECK_INT(write(p[1], "abc", 3), 3);
    pipe_reads = 0;
    CHECK_INT(E_attach_fd(p[0], READ_FD, pipe_byte_cb, 0, NULL, LOW_PRIORITY), 0);
    CHECK_INT(E_queue(exit_cb, 1, NULL, (sp_time){5, 0}), 0);
    E_handle_events();
    CHECK_INT(pipe_reads, 3);
    CHECK_INT(E_dequeue(exit_cb, 1, NULL), 0);
    CHECK_INT(E_detach_fd(p[0], READ_FD), 0);
    close(p[0]);
    close(p[1]);
}

/* ---- The scripted interactive session. ---- */

static mailbox Mbox;
static char Private_group[MAX_GROUP_NAME];
static int Cmd_fd[2];
static const char *Script[] = {"j evg\n", "m evg hello\n", "m evg world\n", "d\n",
                               "m evg while-detached\n", "e\n", "s\n",
                               "m evg while-suspended\n", "r\n", "l evg\n", "q\n"};
static const size_t Script_len = sizeof Script / sizeof *Script;
static size_t Script_pos;
static int Detached, Timed_out;
static int Callbacks_while_detached;
static char Log[16][48];
static int Log_len;

static void log_event(const char *text)
{
    if (Log_len < 16)
        snprintf(Log[Log_len++], sizeof Log[0], "%s", text);
}

static void read_message(int fd, int code, void *data);

/* Feed the next script line into the command pipe every 20 ms. */
static void feed_command(int code, void *data)
{
    (void)code;
    (void)data;
    if (Script_pos == Script_len)
        return;
    const char *line = Script[Script_pos++];
    CHECK_INT(write(Cmd_fd[1], line, strlen(line)), (long long)strlen(line));
    E_queue(feed_command, 0, NULL, (sp_time){0, 20000});
}

static void user_command(int fd, int code, void *data)
{
    (void)code;
    (void)data;
    char line[128];
    size_t n = 0;
    /* One command per call, read byte by byte so nothing is left buffered. */
    while (n + 1 < sizeof line && read(fd, &line[n], 1) == 1 && line[n] != '\n')
        n++;
    line[n] = 0;
    char group[MAX_GROUP_NAME] = "", text[64] = "";
    switch (line[0]) {
    case 'j':
        sscanf(line + 2, "%31s", group);
        CHECK_INT(SP_join(Mbox, group), 0);
        break;
    case 'l':
        sscanf(line + 2, "%31s", group);
        CHECK_INT(SP_leave(Mbox, group), 0);
        break;
    case 'm':
        sscanf(line + 2, "%31s %63s", group, text);
        CHECK_INT(SP_multicast(Mbox, SAFE_MESS, group, 1, (int)strlen(text), text),
                  (long long)strlen(text));
        break;
    case 'd':
        CHECK_INT(E_detach_fd(Mbox, READ_FD), 0);
        Detached = 1;
        break;
    case 'e':
        Detached = 0;
        CHECK_INT(E_attach_fd(Mbox, READ_FD, read_message, 0, NULL, HIGH_PRIORITY), 0);
        break;
    case 's':
        CHECK_INT(E_deactivate_fd(Mbox, READ_FD), 0);
        Detached = 1;
        break;
    case 'r':
        Detached = 0;
        CHECK_INT(E_activate_fd(Mbox, READ_FD), 0);
        break;
    case 'q':
        /* Quit once everything sent before has come back. */
        CHECK_INT(SP_multicast(Mbox, AGREED_MESS, Private_group, 2, 3, "END"), 3);
        break;
    default:
        check_failures++;
        printf("FAIL: unexpected command line \"%s\"\n", line);
    }
}

static void read_message(int fd, int code, void *data)
{
    (void)code;
    (void)data;
    static message m;
    if (Detached)
        Callbacks_while_detached++;
    m.service_type = 0;
    int ret = SP_receive(fd, &m.service_type, m.sender, MAX_TEST_GROUPS, &m.num_groups,
                         m.groups, &m.mess_type, &m.endian_mismatch, MAX_TEST_MESS - 1, m.data);
    if (ret < 0) {
        printf("FAIL: SP_receive in the callback = %d\n", ret);
        check_failures++;
        E_exit_events();
        return;
    }
    char entry[48];
    if (Is_regular_mess(m.service_type)) {
        m.data[ret] = 0;
        snprintf(entry, sizeof entry, "data %.40s", m.data);
        if (strcmp(m.data, "END") == 0)
            E_exit_events();
    } else if (Is_self_leave(m.service_type)) {
        snprintf(entry, sizeof entry, "self-leave %s", m.sender);
    } else {
        snprintf(entry, sizeof entry, "memb 0x%x %s %d", (unsigned)m.service_type, m.sender,
                 m.num_groups);
    }
    log_event(entry);
}

static void time_out(int code, void *data)
{
    (void)code;
    (void)data;
    Timed_out = 1;
    E_exit_events();
}

static void check_interactive_session(const char *spread_name)
{
    sp_time limit = {10, 0};
    int ret = SP_connect_timeout(spread_name, "evuser", 0, 1, &Mbox, Private_group, limit);
    REQUIRE(ret == ACCEPT_SESSION);
    REQUIRE(pipe(Cmd_fd) == 0);

    CHECK_INT(E_init(), 0);
    CHECK_INT(E_attach_fd(Cmd_fd[0], READ_FD, user_command, 0, NULL, LOW_PRIORITY), 0);
    CHECK_INT(E_attach_fd(Mbox, READ_FD, read_message, 0, NULL, HIGH_PRIORITY), 0);
    CHECK_INT(E_queue(feed_command, 0, NULL, (sp_time){0, 20000}), 0);
    CHECK_INT(E_queue(time_out, 0, NULL, (sp_time){10, 0}), 0);
    E_handle_events();

    CHECK(!Timed_out);
    CHECK_INT(E_dequeue(time_out, 0, NULL), 0);
    CHECK_INT(Script_pos, Script_len);
    CHECK_INT(Callbacks_while_detached, 0);
    const char *expected[] = {"memb 0x1100 evg 1",   "data hello",           "data world",
                              "data while-detached", "data while-suspended", "self-leave evg",
                              "data END"};
    size_t n = sizeof expected / sizeof *expected;
    CHECK_INT(Log_len, n);
    for (size_t i = 0; i < n && i < (size_t)Log_len; i++)
        CHECK_STR(Log[i], expected[i]);

    CHECK_INT(E_detach_fd(Mbox, READ_FD), 0);
    CHECK_INT(E_detach_fd(Cmd_fd[0], READ_FD), 0);
    CHECK_INT(SP_disconnect(Mbox), 0);
    close(Cmd_fd[0]);
    close(Cmd_fd[1]);
}

int main(int argc, char **argv)
{
    watchdog(60);
    check_fd_table();
    check_time_arithmetic();
    check_timers();
    check_interactive_session(test_port(argc, argv));
    return finish("events_user");
}
