/*
 * loadgen: a small, fast WebSocket (RFC 6455) load generator. One thread, epoll, non-blocking sockets.
 *
 * Build:  gcc -O2 -Wall -Wextra -Werror -o build/loadgen bench/loadgen.c
 *
 * Modes:
 *   loadgen echo -u ws://127.0.0.1:PORT/ [-c 100] [-k 16] [-s 32] [-b] [-d 5] [-w 1]
 *       N connections, each keeping K messages in flight; every echoed message is replaced by a new one.
 *       Replacements produced while handling one read leave in ONE write per connection (batched), so the
 *       generator costs about one read and one write system call per connection per round, not per message.
 *       Prints one JSON line: msgs_per_sec, latency percentiles (round trip; pure when -k 1, includes
 *       queueing when k > 1), errors, and the generator's own CPU use during the measured window.
 *       Event lines {"event":"open"}, {"event":"measure_start"} and {"event":"measure_end"} come before it.
 *   loadgen idle -u ws://127.0.0.1:PORT/ [-c 10000] [-H 30]
 *       Opens N connections (at most -C handshakes in progress at once), prints {"event":"open",...} when all
 *       are open, holds them H seconds answering server pings with pongs, then closes them (close 1000) and
 *       prints one JSON result line. With -e each connection first sends one message (-s bytes) and reads its
 *       echo, so what a connection keeps after its first message is held too.
 *
 * -z offers permessage-deflate (RFC 7692; "permessage-deflate; client_max_window_bits"): where the server accepts
 * it, every message is sent compressed (compressed once from an empty context with the window the server allowed,
 * RSV1 set), and every compressed message from the server is inflated (with the connection's own context unless
 * the server answered server_no_context_takeover) and compared with what was sent. The result counts the
 * connections that negotiated it ("deflate_conns"). -j makes the text message a JSON array of chat messages
 * (padded with spaces to exactly -s bytes) instead of a repeated alphabet. -V N sends N different messages in turn
 * (default 1: the same message every time); each echo is compared with the one it answers. Bytes read and written over the whole run are reported too.
 *
 * Other options: -C max handshakes in progress (default 100), -T seconds allowed to open everything
 * (default 60), -M accept masked server frames (only for the raw TCP echo ceiling server, which reflects
 * the client's masked frames unchanged), -q no progress lines on stderr, -P busy-poll (epoll_wait never sleeps:
 * the generator burns its core but the server never pays for waking it up; an experiment, not a default).
 *
 * Client frames are masked with a random key chosen per connection (RFC 6455 5.3 asks for a fresh key per
 * frame; one per connection is enough for a benchmark and lets a frame be built once and copied).
 * Server frames of any length encoding are parsed; partial reads and many frames per read are handled;
 * fragmented messages are reassembled (by length) and every echoed payload is compared with what was sent.
 * The handshake is checked: status 101 and the Sec-WebSocket-Accept value (SHA-1 + base64, in wsclient.h).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "wsclient.h"

/* ------------------------------------------------------------------------------------------------ */
/* configuration and counters                                                                          */

enum mode { MODE_ECHO, MODE_IDLE };

static struct {
    enum mode mode;
    wsc_url url;
    int conns;
    int inflight;
    size_t size;
    int binary;
    double duration;
    double warmup;
    double hold;
    int max_pending;
    double open_timeout;
    int allow_masked;
    int quiet;
    int busy_poll;
    int deflate;
    int json;
    int idle_echo;
    int variants;
} cfg;

static struct {
    uint64_t messages;          /* every echoed message */
    uint64_t measured;          /* echoed messages completed inside the measured window */
    uint64_t connect_errors;    /* connect() failed, or the TCP connection died before the 101 */
    uint64_t handshake_errors;  /* a response that is not a valid 101 */
    uint64_t protocol_errors;   /* a server frame that breaks RFC 6455 (or is masked without -M) */
    uint64_t mismatches;        /* an echo whose payload or type differs from what was sent */
    uint64_t server_closes;     /* a close frame or EOF from the server before we asked to close */
    uint64_t io_errors;         /* read/write errors on open connections */
    uint64_t lost;              /* messages still not echoed 1 s after the end */
    uint64_t reads, writes;     /* recv/send system calls inside the measured window */
    uint64_t wakeups, events;   /* epoll_wait calls that returned events, and those events (measured window) */
    uint64_t pings;             /* server pings received */
    uint64_t pongs;             /* pongs sent back */
    uint64_t clean_closes;      /* our close 1000 answered with a close frame */
    uint64_t bytes_in, bytes_out; /* over the whole run */
    uint64_t deflate_conns;     /* connections that negotiated permessage-deflate */
    int opened;                 /* connections that completed the handshake */
    int open_now;               /* connections open at this moment */
} st;

/* ------------------------------------------------------------------------------------------------ */
/* small helpers                                                                                       */

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void note(const char *fmt, ...) {
    if (cfg.quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (q == NULL && n != 0) die("out of memory (%zu bytes)", n);
    return q;
}

static uint64_t rng_state;

/* ------------------------------------------------------------------------------------------------ */
/* latency histogram: 1 us buckets up to 1 s, then one overflow bucket                                 */

#define HIST_MAX 1000000u
static uint32_t *hist;
static uint64_t hist_count, hist_sum_ns, hist_max_ns;

static void hist_add(uint64_t ns) {
    uint64_t us = ns / 1000;
    hist[us < HIST_MAX ? us : HIST_MAX]++;
    hist_count++;
    hist_sum_ns += ns;
    if (ns > hist_max_ns) hist_max_ns = ns;
}

static double hist_pct(double q) {
    if (hist_count == 0) return 0.0;
    uint64_t want = (uint64_t)(q * (double)hist_count);
    if (want < 1) want = 1;
    uint64_t cum = 0;
    for (uint32_t i = 0; i <= HIST_MAX; i++) {
        cum += hist[i];
        if (cum >= want) return (double)i;
    }
    return (double)HIST_MAX;
}

/* ------------------------------------------------------------------------------------------------ */
/* connections                                                                                         */

enum cstate { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSING, C_DONE };

typedef struct conn {
    int fd;
    enum cstate state;
    int want_out;              /* EPOLLOUT registered */
    unsigned char *rbuf;       /* unconsumed input (a partial frame or response head) */
    size_t rlen, rcap;
    unsigned char *wbuf;       /* output not yet accepted by the kernel */
    size_t woff, wlen, wcap;
    unsigned char mask[4];
    unsigned char *frame;      /* the masked frames of the -V variants, back to back, built once */
    size_t frame_len;          /* bytes of all of them */
    size_t *frame_at;          /* where variant v starts in frame (v = 0..variants) */
    uint64_t sent_n, recv_n;   /* messages sent / echoed: the next of each is variant n % variants */
    uint64_t *ts;              /* ring of send times of the messages in flight */
    unsigned ts_head, ts_count;
    int in_frag;               /* a fragmented message is being received */
    int frag_op;
    size_t frag_len;
    int frag_bad;
    char accept[32];           /* expected Sec-WebSocket-Accept */
    wsc_deflate_answer dfl;    /* what the server answered to -z */
    z_stream *inflater;        /* made at the first compressed message */
} conn_t;

#define MAX_VARIANTS 256
static unsigned char *zpayload[16][MAX_VARIANTS]; /* each variant compressed with each window, made when needed */
static size_t zpayload_len[16][MAX_VARIANTS];
static unsigned char *ibuf;         /* inflated messages land here (size + 1 bytes) */

static conn_t *conns;
static int epfd;
static struct sockaddr_storage server_addr;
static socklen_t server_addrlen;
static unsigned char *payloads[MAX_VARIANTS]; /* the messages every connection sends, in turn (-V) */
#define EXPECTED(c) payloads[(c)->recv_n % (unsigned)cfg.variants] /* what the next echo must be */
static unsigned char *sbuf;        /* shared read buffer */
static size_t sbuf_cap = 256 * 1024;
static int stopping;               /* echo: no more replacements; idle: closing */
static int measuring;              /* inside the measured window */
static int pending;                /* connections connecting or handshaking */
static int next_to_open;           /* index of the next connection to start */
static uint64_t loop_now;          /* time taken once per epoll round */

#define READ_CHUNK 65536
#define MAX_FRAME (64u << 20)

static void set_events(conn_t *c, int want_out) {
    if (c->want_out == want_out) return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl MOD: %s", strerror(errno));
    c->want_out = want_out;
}

static void conn_finish(conn_t *c) {
    if (c->state == C_DONE) return;
    if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) pending--;
    if (c->state == C_OPEN || c->state == C_CLOSING) st.open_now--;
    if (c->fd >= 0) close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    c->state = C_DONE;
    free(c->rbuf);
    free(c->wbuf);
    free(c->frame);
    free(c->ts);
    free(c->frame_at);
    c->frame_at = NULL;
    if (c->inflater != NULL) {
        inflateEnd(c->inflater);
        free(c->inflater);
        c->inflater = NULL;
    }
    c->rbuf = c->wbuf = c->frame = NULL;
    c->ts = NULL;
    c->rlen = c->rcap = c->woff = c->wlen = c->wcap = 0;
}

static void wappend(conn_t *c, const void *data, size_t n) {
    if (c->wlen + n > c->wcap) {
        if (c->woff > 0) { /* reclaim the flushed prefix first */
            memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
            c->wlen -= c->woff;
            c->woff = 0;
        }
        if (c->wlen + n > c->wcap) {
            size_t cap = c->wcap ? c->wcap : 1024;
            while (cap < c->wlen + n) cap *= 2;
            c->wbuf = xrealloc(c->wbuf, cap);
            c->wcap = cap;
        }
    }
    memcpy(c->wbuf + c->wlen, data, n);
    c->wlen += n;
}

/* One write system call for everything queued (more only if the kernel took part of it). */
static int flush(conn_t *c) {
    while (c->woff < c->wlen) {
        ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (measuring) st.writes++;
        if (n > 0) {
            st.bytes_out += (uint64_t)n;
            c->woff += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(c, 1);
            return 0;
        }
        if (n < 0 && errno == EINTR) continue;
        return -1;
    }
    c->woff = c->wlen = 0;
    set_events(c, 0);
    return 0;
}

/* A masked client frame (FIN set) carrying data, appended to the output. */
static void append_frame(conn_t *c, int opcode, const unsigned char *data, size_t len) {
    unsigned char hdr[WSC_MAX_CLIENT_HEADER];
    wappend(c, hdr, wsc_frame_header(hdr, opcode, len, c->mask));
    size_t start = c->wlen;
    wappend(c, data, len);
    wsc_mask(c->wbuf + start, len, c->mask);
}

static void build_message_frame(conn_t *c) {
    unsigned char *saved = c->wbuf;
    size_t swlen = c->wlen, swcap = c->wcap, swoff = c->woff;
    c->wbuf = NULL;
    c->wlen = c->wcap = c->woff = 0;
    c->frame_at = xrealloc(c->frame_at, sizeof(size_t) * ((size_t)cfg.variants + 1));
    for (int v = 0; v < cfg.variants; v++) {
        c->frame_at[v] = c->wlen;
        if (c->dfl.on) {
            int w = c->dfl.client_window_bits >= 9 && c->dfl.client_window_bits <= 15 ? c->dfl.client_window_bits : 9;
            if (zpayload[w][v] == NULL &&
                (zpayload[w][v] = wsc_deflate_message(payloads[v], cfg.size, w, &zpayload_len[w][v])) == NULL)
                die("zlib could not compress the message");
            append_frame(c, (cfg.binary ? 2 : 1) | 0x40, zpayload[w][v], zpayload_len[w][v]); /* RSV1: compressed */
        } else {
            append_frame(c, cfg.binary ? 2 : 1, payloads[v], cfg.size);
        }
    }
    c->frame_at[cfg.variants] = c->wlen;
    c->frame = c->wbuf;
    c->frame_len = c->wlen;
    c->wbuf = saved;
    c->wlen = swlen;
    c->wcap = swcap;
    c->woff = swoff;
}

static void send_message(conn_t *c) {
    unsigned v = (unsigned)(c->sent_n++ % (unsigned)cfg.variants);
    wappend(c, c->frame + c->frame_at[v], c->frame_at[v + 1] - c->frame_at[v]);
    c->ts[(c->ts_head + c->ts_count) % (unsigned)cfg.inflight] = loop_now;
    c->ts_count++;
}

static void send_close(conn_t *c, unsigned code) {
    unsigned char body[2] = {(unsigned char)(code >> 8), (unsigned char)code};
    append_frame(c, 8, body, 2);
}

static void start_connection(conn_t *c) {
    int fd = wsc_connect(&server_addr, server_addrlen);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) die("socket: %s (raise the open files limit?)", strerror(errno));
        st.connect_errors++; /* connect() refused at once */
        c->state = C_DONE;
        return;
    }
    c->fd = fd;
    c->state = C_CONNECTING;
    c->want_out = 1;
    pending++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl ADD: %s", strerror(errno));
}

static void send_handshake(conn_t *c) {
    char req[2048];
    const char *extra = cfg.deflate ? "User-Agent: snow-loadgen\r\n" WSC_DEFLATE_OFFER : "User-Agent: snow-loadgen\r\n";
    size_t n = wsc_handshake_request(req, sizeof req, &cfg.url, extra, &rng_state, c->accept);
    wappend(c, req, n);
    c->state = C_HANDSHAKE;
}

static void on_open(conn_t *c) {
    c->state = C_OPEN;
    pending--;
    st.opened++;
    st.open_now++;
    uint64_t r = wsc_rng(&rng_state);
    memcpy(c->mask, &r, 4);
    if (cfg.mode == MODE_ECHO) {
        build_message_frame(c);
        c->ts = xrealloc(NULL, sizeof(uint64_t) * (size_t)cfg.inflight);
        for (int i = 0; i < cfg.inflight; i++) send_message(c);
    } else if (cfg.idle_echo) { /* one message (and its echo) before the connection idles */
        build_message_frame(c);
        c->ts = xrealloc(NULL, sizeof(uint64_t));
        send_message(c);
        free(c->frame);
        free(c->frame_at);
        c->frame = NULL;
        c->frame_at = NULL;
    }
}

/* Queue our close 1000; the caller flushes (or the round's single write does). */
static void begin_close(conn_t *c) {
    c->state = C_CLOSING;
    send_close(c, 1000);
}

static void message_done(conn_t *c, int op, int bad) {
    st.messages++;
    c->recv_n++;
    if (cfg.mode != MODE_ECHO) {
        if (bad || op != (cfg.binary ? 2 : 1)) st.mismatches++;
        if (c->ts_count > 0) c->ts_count--;
        return;
    }
    if (bad || op != (cfg.binary ? 2 : 1)) st.mismatches++;
    if (c->ts_count > 0) {
        uint64_t sent = c->ts[c->ts_head];
        c->ts_head = (c->ts_head + 1) % (unsigned)cfg.inflight;
        c->ts_count--;
        if (measuring) {
            st.measured++;
            hist_add(loop_now - sent);
        }
    } else {
        st.mismatches++; /* an echo of something we never sent */
    }
    if (c->state != C_OPEN) return;
    if (!stopping)
        send_message(c);
    else if (c->ts_count == 0) /* drained: now close, so no echo races with our close frame */
        begin_close(c);
}

/* Handle the frames in buf[0..len). Returns bytes consumed or -1 if the connection must be dropped. */
static long parse_frames(conn_t *c, unsigned char *buf, size_t len) {
    size_t off = 0;
    wsc_frame f;
    while (wsc_parse_frame_header(buf + off, len - off, &f)) {
        unsigned char *p = buf + off;
        size_t avail = len - off, h = f.header;
        int fin = f.fin, op = f.opcode, masked = f.masked;
        uint64_t plen = f.len;
        int compressed = f.rsv == 0x40 && c->dfl.on && fin && (op == 1 || op == 2);
        if ((f.rsv && !compressed) || plen > MAX_FRAME || (masked && !cfg.allow_masked)) {
            st.protocol_errors++;
            return -1;
        }
        if (avail < h + plen) break;
        unsigned char *data = p + h;
        if (masked) {
            wsc_mask(data, (size_t)plen, p + h - 4);
        }
        if (compressed) { /* inflate it; from here on it is a plain message */
            if (c->inflater == NULL) {
                c->inflater = calloc(1, sizeof *c->inflater);
                if (c->inflater == NULL || inflateInit2(c->inflater, -15) != Z_OK) die("zlib: no inflater");
            }
            long n = wsc_inflate_message(c->inflater, c->dfl.server_no_context, data, (size_t)plen, ibuf, cfg.size + 1);
            if (n < 0) {
                st.protocol_errors++;
                return -1;
            }
            off += h + (size_t)plen;
            message_done(c, op, (size_t)n != cfg.size || memcmp(ibuf, EXPECTED(c), cfg.size) != 0);
            continue;
        }
        off += h + (size_t)plen;
        if (op >= 8) { /* control frame */
            if (!fin || plen > 125) {
                st.protocol_errors++;
                return -1;
            }
            if (op == 9) {
                st.pings++;
                if (c->state == C_OPEN) {
                    append_frame(c, 10, data, (size_t)plen);
                    st.pongs++;
                }
            } else if (op == 8) {
                if (c->state == C_CLOSING) {
                    st.clean_closes++;
                } else {
                    st.server_closes++;
                    unsigned code = plen >= 2 ? (unsigned)data[0] << 8 | data[1] : 0;
                    note("server closed a connection: code %u reason '%.*s'", code, plen > 2 ? (int)plen - 2 : 0,
                         plen > 2 ? (char *)data + 2 : "");
                    send_close(c, plen >= 2 ? code : 1000);
                    flush(c);
                }
                return -1; /* close the TCP connection */
            } else if (op != 10) {
                st.protocol_errors++;
                return -1;
            }
            continue;
        }
        if (op == 1 || op == 2) {
            if (c->in_frag) {
                st.protocol_errors++;
                return -1;
            }
            int bad = cfg.mode == MODE_ECHO && (plen > cfg.size || memcmp(data, EXPECTED(c), (size_t)plen) != 0);
            if (fin) {
                message_done(c, op, bad || plen != cfg.size);
            } else {
                c->in_frag = 1;
                c->frag_op = op;
                c->frag_len = (size_t)plen;
                c->frag_bad = bad;
            }
        } else if (op == 0) {
            if (!c->in_frag) {
                st.protocol_errors++;
                return -1;
            }
            if (cfg.mode == MODE_ECHO &&
                (c->frag_len + plen > cfg.size || memcmp(data, EXPECTED(c) + c->frag_len, (size_t)plen) != 0))
                c->frag_bad = 1;
            c->frag_len += (size_t)plen;
            if (fin) {
                c->in_frag = 0;
                message_done(c, c->frag_op, c->frag_bad || c->frag_len != cfg.size);
            }
        } else {
            st.protocol_errors++;
            return -1;
        }
    }
    return (long)off;
}

/* Feed buf[0..len) to the connection; keeps what is left over. Returns -1 if the connection must go. */
static int consume(conn_t *c, unsigned char *buf, size_t len) {
    size_t off = 0;
    if (c->state == C_HANDSHAKE) {
        long n = wsc_handshake_response(buf, len, c->accept, 16384);
        if (n < 0) {
            st.handshake_errors++;
            note("bad handshake response: %.*s", (int)(len < 80 ? len : 80), (char *)buf);
            return -1;
        }
        if (n == 0) goto keep;
        off = (size_t)n;
        if (cfg.deflate) {
            c->dfl = wsc_deflate_parse(buf, (size_t)n);
            if (c->dfl.on) st.deflate_conns++;
        }
        on_open(c);
    }
    {
        long n = parse_frames(c, buf + off, len - off);
        if (n < 0) return -1;
        off += (size_t)n;
    }
keep:
    if (off < len) {
        if (buf != c->rbuf) {
            if (c->rcap < len - off) {
                c->rcap = len - off > 4096 ? len - off : 4096;
                c->rbuf = xrealloc(c->rbuf, c->rcap);
            }
            memcpy(c->rbuf, buf + off, len - off);
        } else if (off > 0) {
            memmove(c->rbuf, buf + off, len - off);
        }
        c->rlen = len - off;
    } else {
        c->rlen = 0;
    }
    return 0;
}

static void on_readable(conn_t *c) {
    unsigned char *buf;
    size_t have, cap;
    if (c->rlen == 0) { /* the common case: read into the shared buffer */
        buf = sbuf;
        have = 0;
        cap = sbuf_cap;
    } else { /* a partial frame is pending: append to it */
        if (c->rcap - c->rlen < READ_CHUNK) {
            c->rcap = c->rcap * 2 > c->rlen + READ_CHUNK ? c->rcap * 2 : c->rlen + READ_CHUNK;
            c->rbuf = xrealloc(c->rbuf, c->rcap);
        }
        buf = c->rbuf;
        have = c->rlen;
        cap = c->rcap;
    }
    ssize_t n = recv(c->fd, buf + have, cap - have, 0);
    if (measuring) st.reads++;
    if (n > 0) st.bytes_in += (uint64_t)n;
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        if (c->state == C_HANDSHAKE)
            st.connect_errors++;
        else if (c->state == C_OPEN)
            st.io_errors++;
        conn_finish(c);
        return;
    }
    if (n == 0) {
        if (c->state == C_HANDSHAKE)
            st.connect_errors++;
        else if (c->state == C_OPEN)
            st.server_closes++;
        conn_finish(c);
        return;
    }
    if (consume(c, buf, have + (size_t)n) < 0) {
        conn_finish(c);
        return;
    }
    if (c->wlen > c->woff && !c->want_out && flush(c) < 0) { /* one write for the whole round */
        st.io_errors++;
        conn_finish(c);
    }
}

static void on_writable(conn_t *c) {
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            st.connect_errors++;
            note("connect: %s", strerror(err));
            conn_finish(c);
            return;
        }
        send_handshake(c);
    }
    if (flush(c) < 0) {
        if (c->state == C_HANDSHAKE) st.connect_errors++;
        else st.io_errors++;
        conn_finish(c);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* main                                                                                                */

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen echo|idle -u ws://HOST:PORT/PATH [-c conns] [-k inflight] [-s size] [-b]\n"
            "               [-d seconds] [-w warmup] [-H hold] [-C max_pending] [-T open_timeout] [-M] [-q] [-P] [-z] [-j] [-e] [-V variants]\n");
    exit(2);
}

static void parse_url(const char *url) {
    int rc;
    if (wsc_parse_url(url, &cfg.url) != 0) die("not a ws:// URL (or too long): %s", url);
    rc = wsc_resolve(&cfg.url, &server_addr, &server_addrlen);
    if (rc != 0) die("cannot resolve %s:%s: %s", cfg.url.host, cfg.url.port, gai_strerror(rc));
}

static double cpu_seconds(double *user, double *sys) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    return *user + *sys;
}

static void print_errors(void) {
    uint64_t errors = st.connect_errors + st.handshake_errors + st.protocol_errors + st.mismatches +
                      st.server_closes + st.io_errors + st.lost;
    printf("\"errors\":%llu,\"connect_errors\":%llu,\"handshake_errors\":%llu,\"protocol_errors\":%llu,"
           "\"mismatches\":%llu,\"server_closes\":%llu,\"io_errors\":%llu,\"lost\":%llu,\"pings\":%llu,"
           "\"pongs\":%llu,\"clean_closes\":%llu,\"deflate_conns\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu",
           (unsigned long long)errors, (unsigned long long)st.connect_errors,
           (unsigned long long)st.handshake_errors, (unsigned long long)st.protocol_errors,
           (unsigned long long)st.mismatches, (unsigned long long)st.server_closes,
           (unsigned long long)st.io_errors, (unsigned long long)st.lost, (unsigned long long)st.pings,
           (unsigned long long)st.pongs, (unsigned long long)st.clean_closes, (unsigned long long)st.deflate_conns,
           (unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    if (strcmp(argv[1], "echo") == 0)
        cfg.mode = MODE_ECHO;
    else if (strcmp(argv[1], "idle") == 0)
        cfg.mode = MODE_IDLE;
    else
        usage();
    cfg.conns = cfg.mode == MODE_ECHO ? 100 : 10000;
    cfg.inflight = 16;
    cfg.variants = 1;
    cfg.size = 32;
    cfg.duration = 5;
    cfg.warmup = 1;
    cfg.hold = 30;
    cfg.max_pending = 100;
    cfg.open_timeout = 60;
    const char *url = NULL;
    int opt;
    optind = 2;
    while ((opt = getopt(argc, argv, "u:c:k:s:bd:w:H:C:T:MqPzjeV:")) != -1) {
        switch (opt) {
        case 'u': url = optarg; break;
        case 'c': cfg.conns = atoi(optarg); break;
        case 'k': cfg.inflight = atoi(optarg); break;
        case 's': cfg.size = (size_t)strtoull(optarg, NULL, 10); break;
        case 'b': cfg.binary = 1; break;
        case 'd': cfg.duration = atof(optarg); break;
        case 'w': cfg.warmup = atof(optarg); break;
        case 'H': cfg.hold = atof(optarg); break;
        case 'C': cfg.max_pending = atoi(optarg); break;
        case 'T': cfg.open_timeout = atof(optarg); break;
        case 'M': cfg.allow_masked = 1; break;
        case 'q': cfg.quiet = 1; break;
        case 'P': cfg.busy_poll = 1; break;
        case 'z': cfg.deflate = 1; break;
        case 'j': cfg.json = 1; break;
        case 'e': cfg.idle_echo = 1; break;
        case 'V': cfg.variants = atoi(optarg); break;
        default: usage();
        }
    }
    if (url == NULL || cfg.conns < 1 || cfg.inflight < 1 || cfg.max_pending < 1 || cfg.duration <= 0 ||
        cfg.warmup < 0 || cfg.hold < 0 || cfg.size > MAX_FRAME || cfg.variants < 1 || cfg.variants > MAX_VARIANTS)
        usage();
    parse_url(url);

    /* 10,000 connections need more than the usual 1024 descriptors: take everything the hard limit allows. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)cfg.conns + 16 > rl.rlim_cur)
        die("%d connections need more open files than the limit allows (%llu)", cfg.conns,
            (unsigned long long)rl.rlim_cur);

    signal(SIGPIPE, SIG_IGN);
    rng_state = wsc_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
    if (rng_state == 0) rng_state = 1;
    for (int v = 0; v < cfg.variants; v++) {
        unsigned char *payload = xrealloc(NULL, cfg.size ? cfg.size : 1);
        for (size_t i = 0; i < cfg.size; i++)
            payload[i] = cfg.binary ? (unsigned char)(i * 131 + 7 + (size_t)v * 17)
                                    : (unsigned char)('a' + (i + (size_t)v * 7) % 26);
        if (cfg.json && cfg.size >= 2) { /* a JSON array of chat messages, padded with spaces to exactly -s bytes */
            static const char *users[] = {"alice", "bob", "carol", "dave", "erin", "frank", "grace"};
            size_t at = 1;
            payload[0] = '[';
            for (int i = 0;; i++) {
                char item[160];
                int k = v * 13 + i; /* each variant has its own numbers and names */
                int n = snprintf(item, sizeof item,
                                 "%s{\"type\":\"chat\",\"room\":\"lobby\",\"user\":\"%s\",\"seq\":%d,"
                                 "\"text\":\"message number %d from %s\"}",
                                 i ? "," : "", users[k % 7], 1000 + k * 7919 % 100000, k, users[(k * 3 + 1) % 7]);
                if (at + (size_t)n + 1 > cfg.size) break;
                memcpy(payload + at, item, (size_t)n);
                at += (size_t)n;
            }
            memset(payload + at, ' ', cfg.size - 1 - at);
            payload[cfg.size - 1] = ']';
        }
        payloads[v] = payload;
    }
    sbuf = xrealloc(NULL, sbuf_cap);
    ibuf = xrealloc(NULL, cfg.size + 1);
    hist = calloc(HIST_MAX + 1, sizeof *hist);
    conns = calloc((size_t)cfg.conns, sizeof *conns);
    if (hist == NULL || conns == NULL) die("out of memory");
    for (int i = 0; i < cfg.conns; i++) conns[i].fd = -1;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1: %s", strerror(errno));

    enum { P_OPENING, P_WARMUP, P_MEASURE, P_HOLD, P_DRAIN, P_CLOSING, P_END } phase = P_OPENING;
    uint64_t t0 = wsc_now_ns();
    uint64_t deadline = t0 + (uint64_t)(cfg.open_timeout * 1e9);
    uint64_t measure_start = 0, measure_end = 0, open_at = 0;
    double cpu0 = 0, cpu1 = 0, u0 = 0, s0 = 0, u1 = 0, s1 = 0;
    struct epoll_event evs[1024];
    loop_now = t0;

    while (phase != P_END) {
        /* start more connections while fewer than max_pending handshakes are in progress */
        while (phase == P_OPENING && next_to_open < cfg.conns && pending < cfg.max_pending)
            start_connection(&conns[next_to_open++]);

        int timeout_ms = 100;
        if (deadline > loop_now) {
            uint64_t left = (deadline - loop_now + 999999) / 1000000;
            if (left < (uint64_t)timeout_ms) timeout_ms = (int)left;
        } else {
            timeout_ms = 0;
        }
        int n = epoll_wait(epfd, evs, 1024, cfg.busy_poll ? 0 : timeout_ms);
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        loop_now = wsc_now_ns();
        if (measuring && n > 0) { /* (with -P, only the polls that found something) */
            st.wakeups++;
            st.events += (uint64_t)n;
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c->state == C_DONE) continue;
            if (c->state == C_CONNECTING) { /* connect finished, one way or the other */
                on_writable(c);
                continue;
            }
            if (evs[i].events & EPOLLOUT) on_writable(c);
            if (c->state != C_DONE && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(c);
        }

        /* phase changes */
        switch (phase) {
        case P_OPENING:
            if (next_to_open == cfg.conns && pending == 0) {
                open_at = loop_now;
            } else if (loop_now >= deadline) {
                note("open timeout: %d of %d connections open", st.open_now, cfg.conns);
                open_at = loop_now;
                for (int i = 0; i < cfg.conns; i++)
                    if (conns[i].state == C_CONNECTING || conns[i].state == C_HANDSHAKE) {
                        st.connect_errors++;
                        conn_finish(&conns[i]);
                    }
                next_to_open = cfg.conns;
            }
            if (open_at) {
                printf("{\"event\":\"open\",\"connections\":%d,\"open\":%d,\"elapsed_s\":%.3f}\n", cfg.conns,
                       st.open_now, (double)(open_at - t0) / 1e9);
                fflush(stdout);
                if (cfg.mode == MODE_ECHO) {
                    phase = P_WARMUP;
                    deadline = loop_now + (uint64_t)(cfg.warmup * 1e9);
                } else {
                    phase = P_HOLD;
                    deadline = loop_now + (uint64_t)(cfg.hold * 1e9);
                }
            }
            break;
        case P_WARMUP:
            if (loop_now >= deadline) {
                phase = P_MEASURE;
                measuring = 1;
                measure_start = loop_now;
                cpu0 = cpu_seconds(&u0, &s0);
                printf("{\"event\":\"measure_start\"}\n"); /* lets a harness sample the server's CPU */
                fflush(stdout);
                deadline = loop_now + (uint64_t)(cfg.duration * 1e9);
            }
            break;
        case P_MEASURE:
            if (loop_now >= deadline) {
                measuring = 0;
                measure_end = loop_now;
                cpu1 = cpu_seconds(&u1, &s1);
                printf("{\"event\":\"measure_end\"}\n");
                fflush(stdout);
            }
            /* fall through */
        case P_HOLD:
            if (loop_now >= deadline) {
                /* Stop replacing echoes; a connection closes once its messages in flight are back (at most
                 * 1 s later), then the server has 2 s to answer the close. */
                stopping = 1;
                phase = P_DRAIN;
                deadline = loop_now + 1000000000ull;
                for (int i = 0; i < cfg.conns; i++) {
                    conn_t *c = &conns[i];
                    if (c->state != C_OPEN || c->ts_count > 0) continue;
                    begin_close(c);
                    if (!c->want_out && flush(c) < 0) conn_finish(c);
                }
            }
            break;
        case P_DRAIN:
            if (loop_now >= deadline) {
                phase = P_CLOSING;
                deadline = loop_now + 2000000000ull;
                for (int i = 0; i < cfg.conns; i++) {
                    conn_t *c = &conns[i];
                    if (c->state != C_OPEN) continue;
                    note("connection %d: %u messages never echoed", i, c->ts_count);
                    st.lost += c->ts_count;
                    begin_close(c);
                    if (!c->want_out && flush(c) < 0) conn_finish(c);
                }
            }
            /* fall through */
        case P_CLOSING:
            if (st.open_now == 0 || (phase == P_CLOSING && loop_now >= deadline)) {
                for (int i = 0; i < cfg.conns; i++) conn_finish(&conns[i]);
                phase = P_END;
            }
            break;
        case P_END:
            break;
        }
    }

    if (cfg.mode == MODE_ECHO) {
        double secs = measure_end > measure_start ? (double)(measure_end - measure_start) / 1e9 : 0;
        double cpu = cpu1 - cpu0;
        printf("{\"mode\":\"echo\",\"connections\":%d,\"opened\":%d,\"inflight\":%d,\"size\":%zu,\"binary\":%d,"
               "\"warmup_s\":%.3f,\"duration_s\":%.3f,\"messages\":%llu,\"msgs_per_sec\":%.1f,"
               "\"p50_us\":%.0f,\"p90_us\":%.0f,\"p99_us\":%.0f,\"p999_us\":%.0f,\"max_us\":%.1f,"
               "\"mean_us\":%.1f,\"cpu_pct\":%.1f,\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"reads\":%llu,"
               "\"writes\":%llu,\"msgs_per_read\":%.2f,\"wakeups\":%llu,\"events_per_wakeup\":%.2f,",
               cfg.conns, st.opened, cfg.inflight, cfg.size, cfg.binary, cfg.warmup, secs,
               (unsigned long long)st.measured, secs > 0 ? (double)st.measured / secs : 0.0, hist_pct(0.50),
               hist_pct(0.90), hist_pct(0.99), hist_pct(0.999), (double)hist_max_ns / 1e3,
               hist_count ? (double)hist_sum_ns / (double)hist_count / 1e3 : 0.0,
               secs > 0 ? 100.0 * cpu / secs : 0.0, u1 - u0, s1 - s0, (unsigned long long)st.reads,
               (unsigned long long)st.writes, st.reads ? (double)st.measured / (double)st.reads : 0.0,
               (unsigned long long)st.wakeups, st.wakeups ? (double)st.events / (double)st.wakeups : 0.0);
    } else {
        printf("{\"mode\":\"idle\",\"connections\":%d,\"opened\":%d,\"hold_s\":%.3f,\"open_s\":%.3f,",
               cfg.conns, st.opened, cfg.hold, open_at ? (double)(open_at - t0) / 1e9 : 0.0);
    }
    print_errors();
    printf("}\n");
    fflush(stdout);
    return 0;
}
