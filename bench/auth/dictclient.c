/* Load generator for the dict benchmark: one connection per lookup, C concurrent clients.
 *
 * Usage: dictclient SOCKET REQUESTS_FILE CONCURRENCY TOTAL
 * REQUESTS_FILE holds one request per line, each a complete hello+lookup in escaped form
 * ("\n" as the two characters backslash n); the client cycles through them.
 * Single-threaded epoll: each slot connects, sends its request, reads until the final reply
 * line (plain "O..."/"N"/"F..." or Dovecot's async "*<id>" followed by "+<id>\tO..."),
 * closes, and starts the next one. Prints: ok failed elapsed_s p50_us p99_us max_us.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct slot {
    int fd;
    size_t sent, len, got;
    const char *req;
    double start;
    char buf[8192];
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static struct sockaddr_un addr;
static char **reqs;
static size_t *req_lens;
static long nreqs, next_req, started, done, ok, failed, total;
static double *lat;
static int ep;

static void start_slot(struct slot *s) {
    for (;;) {
        s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->fd < 0) { perror("socket"); exit(2); }
        s->start = now();
        if (connect(s->fd, (struct sockaddr *)&addr, sizeof addr) == 0 || errno == EINPROGRESS)
            break;
        if (errno == EAGAIN) { /* listen queue full: retry */
            close(s->fd);
            continue;
        }
        perror("connect");
        exit(2);
    }
    long i = next_req++ % nreqs;
    s->req = reqs[i];
    s->len = req_lens[i];
    s->sent = 0;
    s->got = 0;
    started++;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = s};
    ssize_t n = write(s->fd, s->req, s->len);
    if (n > 0) s->sent = n;
    if (s->sent == s->len) ev.events = EPOLLIN;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) { perror("epoll_ctl"); exit(2); }
}

/* 1: finished (counted), 0: need more */
static int check_reply(struct slot *s) {
    char *p = s->buf, *end = s->buf + s->got, *nl;
    while ((nl = memchr(p, '\n', end - p)) != NULL) {
        char *line = p;
        p = nl + 1;
        if (line[0] == '*') continue; /* async id announcement */
        if (line[0] == '+') {          /* "+<id>\t<reply>" */
            char *tab = memchr(line, '\t', nl - line);
            if (!tab) return -1;
            line = tab + 1;
        }
        return line[0] == 'O' ? 1 : -1;
    }
    return 0;
}

static void finish_slot(struct slot *s, int good) {
    epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    lat[done++] = now() - s->start;
    if (good) ok++; else failed++;
    if (started < total) start_slot(s);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s SOCKET REQUESTS_FILE CONCURRENCY TOTAL\n", argv[0]);
        return 2;
    }
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
    int conc = atoi(argv[3]);
    total = atol(argv[4]);
    FILE *f = fopen(argv[2], "r");
    if (!f) { perror("requests"); return 2; }
    size_t cap = 1024;
    reqs = malloc(cap * sizeof *reqs);
    req_lens = malloc(cap * sizeof *req_lens);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) > 0) {
        if (line[len - 1] == '\n') line[--len] = 0;
        char *out = malloc(len + 1);
        size_t o = 0;
        for (ssize_t i = 0; i < len; i++) {
            if (line[i] == '\\' && i + 1 < len && line[i + 1] == 'n') { out[o++] = '\n'; i++; }
            else if (line[i] == '\\' && i + 1 < len && line[i + 1] == 't') { out[o++] = '\t'; i++; }
            else if (line[i] == '\\' && i + 1 < len && line[i + 1] == '\\') { out[o++] = '\\'; i++; }
            else out[o++] = line[i];
        }
        if ((size_t)nreqs == cap) {
            cap *= 2;
            reqs = realloc(reqs, cap * sizeof *reqs);
            req_lens = realloc(req_lens, cap * sizeof *req_lens);
        }
        reqs[nreqs] = out;
        req_lens[nreqs++] = o;
    }
    if (nreqs == 0) { fprintf(stderr, "no requests\n"); return 2; }
    lat = malloc(total * sizeof *lat);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct slot *slots = calloc(conc, sizeof *slots);
    double t0 = now();
    for (int i = 0; i < conc && started < total; i++) start_slot(&slots[i]);
    struct epoll_event evs[256];
    while (done < total) {
        int n = epoll_wait(ep, evs, 256, 10000);
        if (n < 0) { if (errno == EINTR) continue; perror("epoll_wait"); return 2; }
        if (n == 0) { fprintf(stderr, "timeout: no reply for 10 s\n"); return 3; }
        for (int i = 0; i < n; i++) {
            struct slot *s = evs[i].data.ptr;
            if ((evs[i].events & EPOLLOUT) && s->sent < s->len) {
                ssize_t w = write(s->fd, s->req + s->sent, s->len - s->sent);
                if (w > 0) s->sent += w;
                if (s->sent == s->len) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
                    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
                }
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = read(s->fd, s->buf + s->got, sizeof s->buf - 1 - s->got);
                if (r > 0) {
                    s->got += r;
                    int c = check_reply(s);
                    if (c != 0) finish_slot(s, c > 0);
                    else if (s->got >= sizeof s->buf - 1) finish_slot(s, 0);
                } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    finish_slot(s, 0);
                }
            }
        }
    }
    double elapsed = now() - t0;
    qsort(lat, done, sizeof *lat, cmp_double);
    printf("%ld %ld %.6f %.1f %.1f %.1f\n", ok, failed, elapsed, lat[done / 2] * 1e6,
           lat[(long)(done * 0.99)] * 1e6, lat[done - 1] * 1e6);
    return 0;
}
