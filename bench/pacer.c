/*
 * pacer: open-loop HTTP/1.1 load at a fixed rate, each latency timed from when its request
 * fell due (no coordinated omission), as bench/client.py does in Python.
 *
 * Why in C: on a 2-core machine the load generator shares the CPU with the server under
 * test. The Python generator spends about 50 us of CPU a request, so at twice the bidder's
 * throughput it needs a core of its own and falls behind its schedule: the figures then
 * measure the generator. This one spends a few microseconds a request, like wrk, which
 * cannot pace (wrk2 is not packaged).
 *
 * Same semantics as bench/client.py: requests fall due every 1/rate seconds from start_at
 * (CLOCK_MONOTONIC, Python's time.monotonic()); one falling due with no free connection
 * waits in a backlog and is dropped once it is older than the deadline; only requests
 * falling due inside [start_at + warmup, + duration) are tallied.
 *
 * usage: pacer PORT CONNECTIONS RATE START_AT WARMUP_S DURATION_S DEADLINE_S REQUESTS OUT
 *   REQUESTS: complete HTTP requests, each preceded by its length (uint32, little-endian)
 *   OUT: written with every answer's latency in ms from its due time (doubles), then the
 *        same from when it was issued; stdout gets one JSON line of counts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* Never wake more often than this: what fell due meanwhile is dispatched together, and each
 * latency still runs from its own due time. Python's generator wakes each millisecond. */
#define TICK_S 0.0005
#define READ_CHUNK 65536
#define TIMER_TAG UINT64_MAX

typedef struct {
    int fd;
    int alive;
    int busy;           /* a request is in flight */
    double due, issued; /* of the request in flight */
    const char *out;    /* unwritten rest of the request (partial write) */
    size_t out_left;
    char *buf;          /* answer bytes read so far */
    size_t len, cap;
    long need; /* bytes of the answer being read; -1 while its head is incomplete */
    int status;
} Conn;

typedef struct {
    double due, issued;
} Pending;

static struct {
    long due, answered, ok, bids, on_time, errors, dropped;
} tally;

static double *lat_ms, *issued_ms;
static size_t n_lat, cap_lat;
static double window_lo, window_hi, deadline_s;
static char **req_data;
static uint32_t *req_len;
static size_t n_req, next_req;
static Conn *conns;
static int *idle;
static int n_idle;
static Pending *backlog;
static size_t bl_head, bl_len, bl_cap;
static int epfd;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void *grow(void *p, size_t size) {
    void *q = realloc(p, size);
    if (!q) die("realloc");
    return q;
}

static int counts(double due) { return due >= window_lo && due < window_hi; }

static void record(double seconds, double since_issued, int status) {
    if (n_lat == cap_lat) {
        cap_lat = cap_lat ? cap_lat * 2 : 65536;
        lat_ms = grow(lat_ms, cap_lat * sizeof(double));
        issued_ms = grow(issued_ms, cap_lat * sizeof(double));
    }
    lat_ms[n_lat] = seconds * 1000;
    issued_ms[n_lat++] = since_issued * 1000;
    tally.answered++;
    if (status == 200 || status == 204) {
        tally.ok++;
        tally.bids += status == 200;
        tally.on_time += seconds <= deadline_s;
    } else {
        tally.errors++;
    }
}

static void watch(Conn *c, int index, int writable) {
    struct epoll_event ev = {.events = EPOLLIN | (writable ? EPOLLOUT : 0), .data.u64 = index};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
}

static void lost(Conn *c) {
    if (!c->alive) return;
    c->alive = 0;
    if (c->busy && counts(c->due)) tally.errors++;
    c->busy = 0;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

static void write_rest(Conn *c, int index) {
    while (c->out_left) {
        ssize_t n = write(c->fd, c->out, c->out_left);
        if (n < 0) {
            if (errno == EAGAIN) {
                watch(c, index, 1);
                return;
            }
            if (errno == EINTR) continue;
            lost(c);
            return;
        }
        c->out += n;
        c->out_left -= (size_t)n;
    }
}

static void send_on(int index, double due, double issued) {
    Conn *c = &conns[index];
    size_t r = next_req++ % n_req;
    c->busy = 1;
    c->due = due;
    c->issued = issued;
    c->out = req_data[r];
    c->out_left = req_len[r];
    write_rest(c, index); /* a partial write's rest goes when the socket is writable */
}

static void dispatch(double due) {
    if (counts(due)) tally.due++;
    double issued = now_s();
    while (n_idle) {
        int index = idle[--n_idle];
        if (conns[index].alive) {
            send_on(index, due, issued);
            return;
        }
    }
    if (bl_len == bl_cap) { /* grow the ring, unrolled into the new buffer */
        size_t cap = bl_cap ? bl_cap * 2 : 4096;
        Pending *bigger = grow(NULL, cap * sizeof(Pending));
        for (size_t i = 0; i < bl_len; i++) bigger[i] = backlog[(bl_head + i) % bl_cap];
        free(backlog);
        backlog = bigger;
        bl_head = 0;
        bl_cap = cap;
    }
    backlog[(bl_head + bl_len++) % bl_cap] = (Pending){due, issued};
}

static void drop(double due) {
    if (counts(due)) tally.dropped++;
}

static void answered(int index, int status) {
    Conn *c = &conns[index];
    double now = now_s();
    c->busy = 0;
    if (counts(c->due)) record(now - c->due, now - c->issued, status);
    while (bl_len) {
        Pending p = backlog[bl_head];
        bl_head = (bl_head + 1) % bl_cap;
        bl_len--;
        if (now - p.due <= deadline_s) {
            send_on(index, p.due, p.issued);
            return;
        }
        drop(p.due);
    }
    idle[n_idle++] = index;
}

/* The head's status and Content-Length (0 when absent; chunked answers are not supported). */
static void parse_head(Conn *c, size_t end) {
    c->status = (end >= 12) ? atoi(c->buf + 9) : 0;
    long length = 0;
    for (size_t i = 0; i + 16 < end; i++) {
        if (c->buf[i] == '\n' && strncasecmp(c->buf + i + 1, "content-length:", 15) == 0) {
            length = strtol(c->buf + i + 16, NULL, 10);
            break;
        }
    }
    c->need = (long)end + 4 + length;
}

static void readable(int index) {
    Conn *c = &conns[index];
    for (;;) {
        if (c->cap - c->len < READ_CHUNK) {
            c->cap = c->len + READ_CHUNK * 2;
            c->buf = grow(c->buf, c->cap);
        }
        ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (n == 0) {
            lost(c);
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN) return;
            if (errno == EINTR) continue;
            lost(c);
            return;
        }
        c->len += (size_t)n;
        for (;;) {
            if (c->need < 0) {
                char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
                if (!end) break;
                parse_head(c, (size_t)(end - c->buf));
            }
            if ((long)c->len < c->need) break;
            memmove(c->buf, c->buf + c->need, c->len - (size_t)c->need);
            c->len -= (size_t)c->need;
            c->need = -1;
            if (c->busy) answered(index, c->status);
        }
        if ((size_t)n < READ_CHUNK) return;
    }
}

static void load_requests(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    uint32_t length;
    while (fread(&length, sizeof length, 1, f) == 1) {
        req_data = grow(req_data, (n_req + 1) * sizeof(char *));
        req_len = grow(req_len, (n_req + 1) * sizeof(uint32_t));
        req_data[n_req] = grow(NULL, length);
        if (fread(req_data[n_req], 1, length, f) != length) die("short requests file");
        req_len[n_req++] = length;
    }
    fclose(f);
    if (!n_req) {
        fprintf(stderr, "pacer: no requests in %s\n", path);
        exit(2);
    }
}

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS)
        die("connect");
    int one = 1; /* as asyncio sets it: a request is written whole, never held back */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void arm(int timer, double at) {
    struct itimerspec spec = {0};
    spec.it_value.tv_sec = (time_t)at;
    spec.it_value.tv_nsec = (long)((at - (double)(time_t)at) * 1e9);
    if (timerfd_settime(timer, TFD_TIMER_ABSTIME, &spec, NULL) < 0) die("timerfd_settime");
}

static int in_flight(int n_conns) {
    for (int i = 0; i < n_conns; i++)
        if (conns[i].alive && conns[i].busy) return 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 10) {
        fprintf(stderr,
                "usage: pacer PORT CONNECTIONS RATE START_AT WARMUP_S DURATION_S DEADLINE_S "
                "REQUESTS OUT\n");
        return 2;
    }
    int port = atoi(argv[1]), n_conns = atoi(argv[2]);
    double rate = atof(argv[3]), start_at = atof(argv[4]);
    double warmup = atof(argv[5]), duration = atof(argv[6]);
    deadline_s = atof(argv[7]);
    if (port <= 0 || n_conns <= 0 || rate <= 0 || duration <= 0 || deadline_s <= 0) {
        fprintf(stderr, "pacer: PORT, CONNECTIONS, RATE, DURATION_S, DEADLINE_S must be > 0\n");
        return 2;
    }
    load_requests(argv[8]);
    window_lo = start_at + warmup;
    window_hi = window_lo + duration;

    epfd = epoll_create1(0);
    if (epfd < 0) die("epoll_create1");
    conns = calloc((size_t)n_conns, sizeof(Conn));
    idle = calloc((size_t)n_conns, sizeof(int));
    if (!conns || !idle) die("calloc");
    for (int i = 0; i < n_conns; i++) {
        conns[i] = (Conn){.fd = connect_to(port), .alive = 1, .need = -1};
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = (uint64_t)i};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0) die("epoll_ctl");
    }
    /* Connected once each socket reports writable; then only reads are watched. */
    int pending = n_conns;
    struct epoll_event events[512];
    double connect_limit = now_s() + 10;
    while (pending > 0) {
        int n = epoll_wait(epfd, events, 512, 100);
        for (int i = 0; i < n; i++) {
            Conn *c = &conns[events[i].data.u64];
            if (events[i].events & (EPOLLERR | EPOLLHUP)) die("connect to the server");
            if (!(events[i].events & EPOLLOUT)) continue;
            watch(c, (int)events[i].data.u64, 0);
            pending--;
        }
        if (now_s() > connect_limit) die("connect timed out");
    }
    for (int i = 0; i < n_conns; i++) idle[n_idle++] = n_conns - 1 - i;

    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    if (timer < 0) die("timerfd_create");
    struct epoll_event tev = {.events = EPOLLIN, .data.u64 = TIMER_TAG};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, timer, &tev) < 0) die("epoll_ctl timer");

    double interval = 1.0 / rate;
    long k = 0;
    double drain_until = window_hi + deadline_s + 1; /* answers later than this never count */
    for (;;) {
        double now = now_s();
        double due = start_at + (double)k * interval;
        while (due < window_hi && due <= now) {
            dispatch(due);
            due = start_at + (double)++k * interval;
        }
        if (due >= window_hi) {
            if ((!in_flight(n_conns) && !bl_len) || now >= drain_until) break;
            arm(timer, now + 0.01 < drain_until ? now + 0.01 : drain_until);
        } else {
            arm(timer, due > now + TICK_S ? due : now + TICK_S);
        }
        int n = epoll_wait(epfd, events, 512, -1);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            uint64_t tag = events[i].data.u64;
            if (tag == TIMER_TAG) {
                uint64_t expirations;
                if (read(timer, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
                    die("read timerfd");
                continue;
            }
            Conn *c = &conns[tag];
            if (!c->alive) continue;
            if (events[i].events & EPOLLOUT) {
                write_rest(c, (int)tag);
                if (c->alive && !c->out_left) watch(c, (int)tag, 0);
            }
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) readable((int)tag);
        }
    }
    while (bl_len) {
        drop(backlog[bl_head].due);
        bl_head = (bl_head + 1) % bl_cap;
        bl_len--;
    }
    for (int i = 0; i < n_conns; i++) lost(&conns[i]); /* unanswered in flight: errors */

    FILE *out = fopen(argv[9], "wb");
    if (!out) die(argv[9]);
    if (n_lat && (fwrite(lat_ms, sizeof(double), n_lat, out) != n_lat ||
                  fwrite(issued_ms, sizeof(double), n_lat, out) != n_lat))
        die("write latencies");
    fclose(out);
    printf("{\"due\":%ld,\"answered\":%ld,\"ok\":%ld,\"bids\":%ld,\"on_time\":%ld,"
           "\"errors\":%ld,\"dropped\":%ld}\n",
           tally.due, tally.answered, tally.ok, tally.bids, tally.on_time, tally.errors,
           tally.dropped);
    return 0;
}
