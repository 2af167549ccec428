/* Shared helpers for the C API test programs: failure counting, the daemon's
 * address from argv/env, and bounded waits so no test can hang forever. */
#ifndef CTEST_CHECK_H
#define CTEST_CHECK_H

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sp.h"

static int check_failures;

/* Line-buffered stdout, so a test killed by its watchdog still shows what it printed. */
__attribute__((constructor)) static void check_line_buffered_stdout(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
}

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            check_failures++;                                                          \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                     \
        }                                                                              \
    } while (0)

#define CHECK_INT(actual, expected)                                                    \
    do {                                                                               \
        long long check_a_ = (long long)(actual), check_e_ = (long long)(expected);   \
        if (check_a_ != check_e_) {                                                    \
            check_failures++;                                                          \
            printf("FAIL %s:%d: %s = %lld (0x%llx), expected %s = %lld (0x%llx)\n",    \
                   __FILE__, __LINE__, #actual, check_a_, check_a_, #expected,         \
                   check_e_, check_e_);                                                \
        }                                                                              \
    } while (0)

#define CHECK_STR(actual, expected)                                                    \
    do {                                                                               \
        const char *check_a_ = (actual), *check_e_ = (expected);                       \
        if (check_a_ == NULL || strcmp(check_a_, check_e_) != 0) {                     \
            check_failures++;                                                          \
            printf("FAIL %s:%d: %s = \"%s\", expected \"%s\"\n", __FILE__, __LINE__,   \
                   #actual, check_a_ ? check_a_ : "(null)", check_e_);                 \
        }                                                                              \
    } while (0)

/* Give up on a check that cannot continue (e.g. no connection). */
#define REQUIRE(cond)                                                                  \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            printf("FATAL %s:%d: %s\n", __FILE__, __LINE__, #cond);                    \
            exit(2);                                                                   \
        }                                                                              \
    } while (0)

/* The daemon's port: argv[1] if given, else SPREAD_TEST_PORT, else 4803. */
static inline const char *test_port(int argc, char **argv)
{
    const char *port = argc > 1 ? argv[1] : getenv("SPREAD_TEST_PORT");
    return port && *port ? port : "4803";
}

/* Set when running against the original 5.0.1, whose known defects we skip. */
static inline int testing_original(void)
{
    const char *v = getenv("SPREAD_TEST_ORIGINAL");
    return v && *v && strcmp(v, "0") != 0;
}

/* Directory of the daemon's Unix socket, as the library computes it. */
static inline const char *socket_dir(void)
{
    const char *dir = getenv("SPREAD_SOCKET_DIR");
    return dir && *dir ? dir : "/tmp";
}

static void check_watchdog_expired(int sig)
{
    (void)sig;
    static const char text[] = "FAIL: watchdog expired (something blocked or hung)\n";
    if (write(1, text, sizeof text - 1) < 0)
        _exit(3);
    _exit(3);
}

/* End the whole program with a failure if it runs longer than `seconds`. */
static inline void watchdog(unsigned seconds)
{
    signal(SIGALRM, check_watchdog_expired);
    alarm(seconds);
}

/* Wait up to `ms` milliseconds for `fd` to become readable; 1 if it did. */
static inline int wait_readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) > 0;
}

static inline int finish(const char *prog)
{
    if (check_failures) {
        printf("%s: %d check(s) FAILED\n", prog, check_failures);
        return 1;
    }
    printf("%s: all checks passed\n", prog);
    return 0;
}

#endif
