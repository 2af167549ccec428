/* Speaking the client protocol by hand over the daemon's Unix socket, for tests that send
 * what the library never would. Little-endian host assumed (x86-64, as the ABI). */
#ifndef CTEST_RAW_H
#define CTEST_RAW_H

#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "session.h"

static char socket_path[108];

/* Use the Unix socket of `port` in the library's socket directory. */
static inline void raw_set_port(const char *port)
{
    snprintf(socket_path, sizeof socket_path, "%s/%s", socket_dir(), port);
}

static inline int raw_connect(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        printf("FATAL: connect %s: %s\n", socket_path, strerror(errno));
        exit(2);
    }
    return fd;
}

static inline void send_bytes(int fd, const void *buf, size_t len)
{
    REQUIRE(send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len);
}

/* Read until EOF or `max` bytes, waiting at most `ms` in total. Returns bytes read, or -1
 * if the deadline passed without EOF. */
static inline int read_until_eof(int fd, unsigned char *buf, int max, int ms)
{
    int got = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        int left = ms - (int)((now.tv_sec - start.tv_sec) * 1000 +
                              (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left <= 0 || !wait_readable(fd, left))
            return -1;
        ssize_t n = recv(fd, buf + got, max - got, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return got;
        if (n < 0)
            return -1;
        got += (int)n;
        if (got == max)
            return got;
    }
}

/* Read exactly `len` bytes within `ms`; 1 on success. */
static inline int read_exact(int fd, unsigned char *buf, int len, int ms)
{
    int got = 0;
    while (got < len) {
        if (!wait_readable(fd, ms))
            return 0;
        ssize_t n = recv(fd, buf + got, len - got, 0);
        if (n <= 0)
            return 0;
        got += (int)n;
    }
    return 1;
}

/* Handshake as a 5.0.1 client named `name`; returns the fd or -1. */
static inline int raw_session(const char *name, char private_group[MAX_GROUP_NAME])
{
    int fd = raw_connect();
    unsigned char req[16] = {5, 0, 1, 0, (unsigned char)strlen(name)};
    memcpy(req + 5, name, strlen(name));
    send_bytes(fd, req, 5 + strlen(name));
    unsigned char len, list[256];
    if (!read_exact(fd, &len, 1, 3000) || len > 90 || !read_exact(fd, list, len, 3000)) {
        close(fd);
        return -1;
    }
    unsigned char choice[90] = "NULL";
    send_bytes(fd, choice, sizeof choice);
    unsigned char accept[5];
    if (!read_exact(fd, accept, 5, 3000) || accept[0] != 1 || accept[4] >= MAX_GROUP_NAME ||
        !read_exact(fd, (unsigned char *)private_group, accept[4], 3000)) {
        close(fd);
        return -1;
    }
    private_group[accept[4]] = 0;
    return fd;
}

/* A 48-byte little-endian header for a request from `pg`. */
static inline void make_header(unsigned char *h, uint32_t type, const char *pg, int32_t num_groups,
                        uint32_t hint, int32_t data_len)
{
    memset(h, 0, 48);
    memcpy(h, &type, 4);
    strncpy((char *)h + 4, pg, 31);
    memcpy(h + 36, &num_groups, 4);
    memcpy(h + 40, &hint, 4);
    memcpy(h + 44, &data_len, 4);
}

#endif
