/* 1,000 connect/disconnect cycles (argv[2] or SPREAD_TEST_CYCLES to change) must not
 * leak descriptors or memory in the library. */
#include <dirent.h>

#include "session.h"

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e = readdir(d); e; e = readdir(d))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* One cycle; alternates Unix/TCP, membership and SP_kill vs SP_disconnect. */
static int cycle(const char *unix_name, const char *tcp_name, int i)
{
    mailbox mbox;
    char pg[MAX_GROUP_NAME];
    int ret = SP_connect(i % 2 ? tcp_name : unix_name, "cycler", 0, i % 3 == 0, &mbox, pg);
    if (ret != ACCEPT_SESSION) {
        printf("FAIL: cycle %d: SP_connect = %d\n", i, ret);
        return 0;
    }
    if (i % 10 == 0) {
        /* Some traffic so receive-side state is exercised too. */
        static message m;
        if (SP_multicast(mbox, FIFO_MESS, pg, 0, 5, "cycle") != 5 || recv_msg(mbox, &m, 5000) != 5) {
            printf("FAIL: cycle %d: no echo\n", i);
            return 0;
        }
    }
    if (i % 4 == 3) {
        SP_kill(mbox);
        /* The daemon frees the name when it notices the close; wait for that. */
        for (int tries = 0; tries < 200; tries++) {
            ret = SP_connect(unix_name, "cycler", 0, 0, &mbox, pg);
            if (ret == ACCEPT_SESSION)
                return SP_disconnect(mbox) == 0;
            if (ret != REJECT_NOT_UNIQUE)
                break;
            usleep(5000);
        }
        printf("FAIL: cycle %d: reconnect after SP_kill = %d\n", i, ret);
        return 0;
    }
    ret = SP_disconnect(mbox);
    if (ret != 0) {
        printf("FAIL: cycle %d: SP_disconnect = %d\n", i, ret);
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    watchdog(300);
    const char *port = test_port(argc, argv);
    const char *count = argc > 2 ? argv[2] : getenv("SPREAD_TEST_CYCLES");
    int cycles = count && *count ? atoi(count) : 1000;
    if (cycles < 100)
        cycles = 100;
    char unix_name[16], tcp_name[48];
    snprintf(unix_name, sizeof unix_name, "%s", port);
    snprintf(tcp_name, sizeof tcp_name, "%s@127.0.0.1", port);

    /* Warm up: first-use allocations (session table, resolver, libc buffers). */
    int warmup = 50;
    for (int i = 0; i < warmup; i++)
        REQUIRE(cycle(unix_name, tcp_name, i));
    int fds_before = open_fds();
    long rss_before = rss_kib();

    int ok = 0;
    for (int i = warmup; i < warmup + cycles; i++) {
        if (!cycle(unix_name, tcp_name, i))
            break;
        ok++;
    }
    CHECK_INT(ok, cycles);

    int fds_after = open_fds();
    long rss_after = rss_kib();
    printf("cycles: %d; fds %d -> %d; VmRSS %ld -> %ld KiB\n", ok, fds_before, fds_after,
           rss_before, rss_after);
    CHECK(fds_before > 0);
    CHECK_INT(fds_after, fds_before);
    CHECK(rss_before > 0);
    /* 1 KiB leaked per cycle would show as 1000 KiB; allow allocator noise below that. */
    CHECK(rss_after - rss_before < 512);
    return finish("cycles");
}
