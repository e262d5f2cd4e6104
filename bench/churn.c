/*
 * churn: connection churn for WebSocket servers (issue 26). One thread, epoll, non-blocking sockets.
 *
 * Build:  gcc -O2 -Wall -Wextra -Werror -o build/churn bench/churn.c -lssl -lcrypto -lz   (bench/bench_churn.py does)
 *
 *   churn -u ws://HOST:PORT/PATH | wss://HOST:PORT/PATH [-k 64] [-s 32] [-d 5] [-w 1] [-R] [-t 5] [-q]
 *
 * -k cycles are kept in flight; each cycle is: TCP connect (and, for wss://, a TLS 1.3 handshake: a full one unless
 * -R), the WebSocket opening handshake, one masked text message of -s bytes and its echo (checked), our Close 1000,
 * the server's Close, and the end of the connection: the server closes TCP first (RFC 6455 7.1.1), we answer with
 * our own close (and, over TLS, our close_notify). A finished cycle starts the next one at once.
 *
 * -R (wss:// only) resumes TLS sessions, as a reconnecting client does: each of the -k slots offers the session
 * (a TLS 1.3 ticket) it was given on its previous connection. "resumed" counts the handshakes the server resumed.
 *
 * Prints {"event":"measure_start"} and {"event":"measure_end"} around the measured window (-d seconds after -w of
 * warm-up), then one JSON line: cycles_per_sec, handshake time percentiles (connect() to a valid 101, TLS
 * included; hs_*_us), cycle time percentiles (connect() to the server's end of stream; cycle_*_us), errors by kind
 * and the client's own CPU use. A cycle stuck longer than -t seconds is abandoned and counted in "timeouts".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wsclient.h"

enum sstate { S_IDLE, S_CONNECTING, S_TLS, S_UPGRADE, S_ECHO, S_CLOSING, S_EOF };

typedef struct slot {
    int fd;
    enum sstate state;
    int want_out;
    SSL *ssl;
    SSL_SESSION *session; /* -R: what the previous connection of this slot was given */
    unsigned char in[8192];
    size_t in_len;
    unsigned char out[2048];
    size_t out_off, out_len;
    char accept[32];
    uint64_t started, upgraded;
} slot_t;

static struct {
    wsc_url url;
    int tls, resume, inflight, quiet;
    size_t size;
    double duration, warmup, stuck;
} cfg;

static struct {
    uint64_t cycles, measured;
    uint64_t connect_errors, tls_errors, handshake_errors, protocol_errors, mismatches, early_closes, timeouts;
    uint64_t tls_handshakes, resumed;
} st;

#define HIST_MAX 1000000u /* 1 us buckets up to 1 s, then an overflow bucket */
typedef struct hist {
    uint32_t *n;
    uint64_t count;
} hist_t;
static hist_t hs_hist, cycle_hist;

static slot_t *slots;
static int epfd, measuring;
static SSL_CTX *ssl_ctx;
static struct sockaddr_storage addr;
static socklen_t addrlen;
static uint64_t rng, loop_now;
static unsigned char *payload;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "churn: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void note(const char *fmt, ...) {
    va_list ap;
    if (cfg.quiet) return;
    va_start(ap, fmt);
    fprintf(stderr, "churn: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static void hist_add(hist_t *h, uint64_t ns) {
    uint64_t us = ns / 1000;
    h->n[us < HIST_MAX ? us : HIST_MAX]++;
    h->count++;
}

static double hist_pct(const hist_t *h, double q) {
    uint64_t want = (uint64_t)(q * (double)h->count), cum = 0;
    if (h->count == 0) return 0.0;
    if (want < 1) want = 1;
    for (uint32_t i = 0; i <= HIST_MAX; i++) {
        cum += h->n[i];
        if (cum >= want) return (double)i;
    }
    return (double)HIST_MAX;
}

static void set_events(slot_t *s, int want_out) {
    if (s->want_out == want_out) return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = s};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0) die("epoll_ctl MOD: %s", strerror(errno));
    s->want_out = want_out;
}

/* End the slot's connection (it is started again by the main loop). */
static void finish(slot_t *s) {
    if (s->ssl != NULL) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    s->state = S_IDLE;
}

static void fail(slot_t *s, uint64_t *counter, const char *what) {
    (*counter)++;
    note("%s", what);
    finish(s);
}

static void start(slot_t *s) {
    s->fd = wsc_connect(&addr, addrlen);
    if (s->fd < 0) {
        if (errno == EMFILE || errno == ENFILE) die("socket: %s", strerror(errno));
        st.connect_errors++;
        s->state = S_IDLE;
        return;
    }
    s->state = S_CONNECTING;
    s->started = loop_now;
    s->in_len = s->out_off = s->out_len = 0;
    s->want_out = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = s};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0) die("epoll_ctl ADD: %s", strerror(errno));
}

static void queue(slot_t *s, const void *data, size_t n) {
    if (s->out_len + n > sizeof s->out) die("output buffer too small");
    memcpy(s->out + s->out_len, data, n);
    s->out_len += n;
}

static void queue_frame(slot_t *s, int opcode, const unsigned char *data, size_t len) {
    unsigned char hdr[WSC_MAX_CLIENT_HEADER], mask[4];
    uint64_t r = wsc_rng(&rng);
    memcpy(mask, &r, 4);
    size_t h = wsc_frame_header(hdr, opcode, len, mask);
    queue(s, hdr, h);
    queue(s, data, len);
    wsc_mask(s->out + s->out_len - len, len, mask);
}

/* Bytes moved, 0 at the end of the stream, -1 would block (want_out says which way), -2 on an error. */
static long io(slot_t *s, int writing, void *buf, size_t n) {
    if (s->ssl == NULL) {
        ssize_t r = writing ? send(s->fd, buf, n, MSG_NOSIGNAL) : recv(s->fd, buf, n, 0);
        if (r >= 0) return (long)r;
        if (errno == EAGAIN || errno == EINTR) {
            if (writing) set_events(s, 1);
            return -1;
        }
        return -2;
    }
    int r = writing ? SSL_write(s->ssl, buf, (int)n) : SSL_read(s->ssl, buf, (int)n);
    if (r > 0) return r;
    switch (SSL_get_error(s->ssl, r)) {
    case SSL_ERROR_WANT_READ: return -1;
    case SSL_ERROR_WANT_WRITE: set_events(s, 1); return -1;
    case SSL_ERROR_ZERO_RETURN: return 0;
    case SSL_ERROR_SYSCALL: ERR_clear_error(); return errno == 0 ? 0 : -2;
    default: ERR_clear_error(); return -2;
    }
}

static int flush(slot_t *s) {
    while (s->out_off < s->out_len) {
        long n = io(s, 1, s->out + s->out_off, s->out_len - s->out_off);
        if (n == -1) return 0;
        if (n <= 0) return -1;
        s->out_off += (size_t)n;
    }
    s->out_off = s->out_len = 0;
    set_events(s, 0);
    return 0;
}

static void send_upgrade(slot_t *s) {
    char req[1024];
    size_t n = wsc_handshake_request(req, sizeof req, &cfg.url, "User-Agent: snow-churn\r\n", &rng, s->accept);
    if (n == 0) die("handshake request too long");
    queue(s, req, n);
    s->state = S_UPGRADE;
}

/* The cycle is over: the server ended the stream after its Close. */
static void cycle_done(slot_t *s) {
    st.cycles++;
    if (measuring) {
        st.measured++;
        hist_add(&hs_hist, s->upgraded - s->started);
        hist_add(&cycle_hist, loop_now - s->started);
    }
    if (s->ssl != NULL) {
        if (cfg.resume) {
            SSL_SESSION *got = SSL_get1_session(s->ssl);
            if (got != NULL && SSL_SESSION_is_resumable(got)) {
                if (s->session != NULL) SSL_SESSION_free(s->session);
                s->session = got;
            } else if (got != NULL) {
                SSL_SESSION_free(got);
            }
        }
        SSL_shutdown(s->ssl); /* our close_notify; the socket closes right after */
    }
    finish(s);
}

/* Handle what is in s->in. -1 if the slot was finished. */
static int consume(slot_t *s) {
    for (;;) {
        if (s->state == S_UPGRADE) {
            long n = wsc_handshake_response(s->in, s->in_len, s->accept, sizeof s->in - 1);
            if (n == 0) return 0;
            if (n < 0) {
                note("bad handshake response: %.*s", (int)(s->in_len < 80 ? s->in_len : 80), (char *)s->in);
                fail(s, &st.handshake_errors, "handshake refused");
                return -1;
            }
            s->upgraded = loop_now;
            memmove(s->in, s->in + n, s->in_len - (size_t)n);
            s->in_len -= (size_t)n;
            queue_frame(s, 1, payload, cfg.size);
            s->state = S_ECHO;
            continue;
        }
        if (s->state == S_EOF) {
            s->in_len = 0; /* nothing more is expected; ignore it */
            return 0;
        }
        wsc_frame f;
        if (!wsc_parse_frame_header(s->in, s->in_len, &f)) return 0;
        if (f.masked || f.rsv || f.len > 125 + cfg.size) {
            fail(s, &st.protocol_errors, "bad server frame");
            return -1;
        }
        if (s->in_len < f.header + f.len) return 0;
        const unsigned char *data = s->in + f.header;
        if (f.opcode == 8 && s->state == S_ECHO) {
            fail(s, &st.early_closes, "server closed before the echo");
            return -1;
        }
        if (s->state == S_ECHO && f.opcode != 9 && f.opcode != 10) {
            if (f.opcode != 1 || !f.fin || f.len != cfg.size || memcmp(data, payload, cfg.size) != 0) {
                fail(s, &st.mismatches, "echo differs from what was sent");
                return -1;
            }
            unsigned char body[2] = {1000 >> 8, 1000 & 0xff};
            queue_frame(s, 8, body, 2);
            s->state = S_CLOSING;
        } else if (s->state == S_CLOSING && f.opcode == 8) {
            if (f.len < 2 || (data[0] << 8 | data[1]) != 1000) {
                fail(s, &st.protocol_errors, "server's Close is not 1000");
                return -1;
            }
            s->state = S_EOF;
        }
        size_t used = f.header + (size_t)f.len;
        memmove(s->in, s->in + used, s->in_len - used);
        s->in_len -= used;
    }
}

static void on_event(slot_t *s, uint32_t events) {
    if (s->state == S_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            fail(s, &st.connect_errors, strerror(err));
            return;
        }
        if (cfg.tls) {
            s->ssl = SSL_new(ssl_ctx);
            if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1) die("SSL_new failed");
            SSL_set_connect_state(s->ssl);
            SSL_set_tlsext_host_name(s->ssl, cfg.url.host);
            if (cfg.resume && s->session != NULL) SSL_set_session(s->ssl, s->session);
            s->state = S_TLS;
        } else {
            send_upgrade(s);
        }
        set_events(s, 0);
    }
    if (s->state == S_TLS) {
        int r = SSL_do_handshake(s->ssl);
        if (r != 1) {
            int e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                set_events(s, e == SSL_ERROR_WANT_WRITE);
                return;
            }
            char text[256];
            ERR_error_string_n(ERR_get_error(), text, sizeof text);
            ERR_clear_error();
            fail(s, &st.tls_errors, text);
            return;
        }
        st.tls_handshakes++;
        if (SSL_session_reused(s->ssl)) st.resumed++;
        send_upgrade(s);
    }
    if (flush(s) < 0) {
        fail(s, &st.early_closes, "write failed");
        return;
    }
    for (;;) {
        if (s->in_len == sizeof s->in) {
            fail(s, &st.protocol_errors, "server sent too much");
            return;
        }
        long n = io(s, 0, s->in + s->in_len, sizeof s->in - s->in_len);
        if (n == -1) break;
        if (n == 0) {
            if (s->state == S_EOF)
                cycle_done(s);
            else
                fail(s, &st.early_closes, "server ended the connection early");
            return;
        }
        if (n < 0) {
            if (s->state == S_EOF)
                cycle_done(s); /* a reset after the Close handshake still ends the cycle */
            else
                fail(s, &st.early_closes, "read error");
            return;
        }
        s->in_len += (size_t)n;
        if (consume(s) < 0) return;
        if (flush(s) < 0) {
            fail(s, &st.early_closes, "write failed");
            return;
        }
    }
}

static double cpu_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static void usage(void) {
    fprintf(stderr, "usage: churn -u ws://HOST:PORT/PATH|wss://HOST:PORT/PATH [-k inflight] [-s size] [-d seconds] "
                    "[-w warmup] [-R] [-t stuck_seconds] [-q]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *url = NULL;
    char plain[1400];
    int opt, rc;
    cfg.inflight = 64;
    cfg.size = 32;
    cfg.duration = 5;
    cfg.warmup = 1;
    cfg.stuck = 5;
    while ((opt = getopt(argc, argv, "u:k:s:d:w:Rt:q")) != -1) {
        switch (opt) {
        case 'u': url = optarg; break;
        case 'k': cfg.inflight = atoi(optarg); break;
        case 's': cfg.size = (size_t)strtoull(optarg, NULL, 10); break;
        case 'd': cfg.duration = atof(optarg); break;
        case 'w': cfg.warmup = atof(optarg); break;
        case 'R': cfg.resume = 1; break;
        case 't': cfg.stuck = atof(optarg); break;
        case 'q': cfg.quiet = 1; break;
        default: usage();
        }
    }
    if (url == NULL || cfg.inflight < 1 || cfg.size > 4096 || cfg.duration <= 0 || cfg.warmup < 0 || cfg.stuck <= 0)
        usage();
    cfg.tls = strncmp(url, "wss://", 6) == 0;
    if (cfg.resume && !cfg.tls) die("-R needs a wss:// URL");
    /* wsclient.h parses ws:// URLs: give it the same URL under that scheme (port 443 by default for wss://) */
    snprintf(plain, sizeof plain, "ws://%s", url + (cfg.tls ? 6 : 5));
    if ((!cfg.tls && strncmp(url, "ws://", 5) != 0) || wsc_parse_url(plain, &cfg.url) != 0)
        die("not a ws:// or wss:// URL (or too long): %s", url);
    if (cfg.tls && strchr(url + 6, ':') == NULL) snprintf(cfg.url.port, sizeof cfg.url.port, "443");
    rc = wsc_resolve(&cfg.url, &addr, &addrlen);
    if (rc != 0) die("cannot resolve %s:%s: %s", cfg.url.host, cfg.url.port, gai_strerror(rc));
    if (cfg.tls) {
        ssl_ctx = SSL_CTX_new(TLS_client_method());
        if (ssl_ctx == NULL) die("SSL_CTX_new failed");
        SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_3_VERSION);
        SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL); /* a benchmark against a self-signed certificate */
        SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    }
    signal(SIGPIPE, SIG_IGN);
    rng = wsc_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
    if (rng == 0) rng = 1;
    payload = malloc(cfg.size + 1);
    slots = calloc((size_t)cfg.inflight, sizeof *slots);
    hs_hist.n = calloc(HIST_MAX + 1, sizeof(uint32_t));
    cycle_hist.n = calloc(HIST_MAX + 1, sizeof(uint32_t));
    if (payload == NULL || slots == NULL || hs_hist.n == NULL || cycle_hist.n == NULL) die("out of memory");
    for (size_t i = 0; i < cfg.size; i++) payload[i] = (unsigned char)('a' + i % 26);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1: %s", strerror(errno));
    for (int i = 0; i < cfg.inflight; i++) slots[i].fd = -1;

    struct epoll_event evs[256];
    uint64_t t0 = wsc_now_ns(), measure_start = t0 + (uint64_t)(cfg.warmup * 1e9);
    uint64_t measure_end = measure_start + (uint64_t)(cfg.duration * 1e9), next_check = t0, stuck_ns;
    double cpu0 = 0, cpu1 = 0;
    stuck_ns = (uint64_t)(cfg.stuck * 1e9);
    loop_now = t0;
    for (;;) {
        for (int i = 0; i < cfg.inflight; i++)
            if (slots[i].state == S_IDLE) start(&slots[i]);
        int n = epoll_wait(epfd, evs, 256, 50);
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        loop_now = wsc_now_ns();
        for (int i = 0; i < n; i++) {
            slot_t *s = evs[i].data.ptr;
            if (s->state != S_IDLE) on_event(s, evs[i].events);
        }
        if (!measuring && loop_now >= measure_start && loop_now < measure_end) {
            measuring = 1;
            cpu0 = cpu_now();
            printf("{\"event\":\"measure_start\"}\n");
            fflush(stdout);
        }
        if (loop_now >= measure_end) {
            measuring = 0;
            cpu1 = cpu_now();
            printf("{\"event\":\"measure_end\"}\n");
            fflush(stdout);
            break;
        }
        if (loop_now >= next_check) { /* abandon cycles stuck longer than -t */
            next_check = loop_now + 100000000ull;
            for (int i = 0; i < cfg.inflight; i++)
                if (slots[i].state != S_IDLE && loop_now - slots[i].started > stuck_ns)
                    fail(&slots[i], &st.timeouts, "cycle timed out");
        }
    }
    double secs = (double)(measure_end - measure_start) / 1e9;
    uint64_t errors = st.connect_errors + st.tls_errors + st.handshake_errors + st.protocol_errors + st.mismatches +
                      st.early_closes + st.timeouts;
    printf("{\"mode\":\"churn\",\"tls\":%d,\"resume\":%d,\"inflight\":%d,\"size\":%zu,\"duration_s\":%.3f,"
           "\"cycles\":%llu,\"cycles_per_sec\":%.1f,\"hs_p50_us\":%.0f,\"hs_p90_us\":%.0f,\"hs_p99_us\":%.0f,"
           "\"cycle_p50_us\":%.0f,\"cycle_p99_us\":%.0f,\"cpu_pct\":%.1f,\"tls_handshakes\":%llu,\"resumed\":%llu,"
           "\"errors\":%llu,\"connect_errors\":%llu,\"tls_errors\":%llu,\"handshake_errors\":%llu,"
           "\"protocol_errors\":%llu,\"mismatches\":%llu,\"early_closes\":%llu,\"timeouts\":%llu}\n",
           cfg.tls, cfg.resume, cfg.inflight, cfg.size, secs, (unsigned long long)st.measured,
           (double)st.measured / secs, hist_pct(&hs_hist, 0.5), hist_pct(&hs_hist, 0.9), hist_pct(&hs_hist, 0.99),
           hist_pct(&cycle_hist, 0.5), hist_pct(&cycle_hist, 0.99), 100.0 * (cpu1 - cpu0) / secs,
           (unsigned long long)st.tls_handshakes, (unsigned long long)st.resumed, (unsigned long long)errors,
           (unsigned long long)st.connect_errors, (unsigned long long)st.tls_errors,
           (unsigned long long)st.handshake_errors, (unsigned long long)st.protocol_errors,
           (unsigned long long)st.mismatches, (unsigned long long)st.early_closes, (unsigned long long)st.timeouts);
    fflush(stdout);
    return 0;
}
