/*
 * fanout: broadcast fan-out benchmark client for the bench protocol (issue 4). One thread, epoll, non-blocking.
 *
 * Build:  gcc -O2 -Wall -Wextra -Werror -o build/fanout bench/fanout.c   (it includes bench/wsclient.h)
 * Run:    fanout -u ws://127.0.0.1:PORT/ [-U ws://127.0.0.1:PORT2/] [-n 1000] [-K 20] [-W 16] [-d 5] [-w 1] [-s 64]
 *                [-C 100] [-T 120]
 *         -U: a second server (another node of a cluster): members with an odd index connect there, the others
 *             (member 0, the sender, included) to -u: half the members are reached across the cluster.
 *
 * The bench protocol: every connection is a member of one room; a text message whose first character is 'B' is
 * broadcast by the server to every member, the sender included.
 *
 * 1. Opens N member connections (at most -C handshakes in progress at once), checks each handshake (status 101,
 *    Upgrade: websocket, Sec-WebSocket-Accept; bench/wsclient.h), prints {"event":"open"} when all are open.
 * 2. Barrier: member 0 (the sender) broadcasts probe messages ("BP...") until every member has received one, so
 *    no measurement starts before every member is in the room (some servers add a member to their set only
 *    after sending the 101). Bounded: at most 20 probes, 0.5 s apart.
 * 3. Latency: K broadcasts one after the other; for each, the time from the sender's write to the moment the
 *    LAST member has received it. Reported: p50, p90, min, max, mean (ms).
 * 4. Throughput: the sender keeps W broadcasts in flight (a broadcast is in flight until every member has it):
 *    after each batch of epoll events, it tops the window up in one write. -w seconds of warm-up, then -d seconds
 *    measured between {"event":"measure_start"} and {"event":"measure_end"}: deliveries/s = messages received
 *    by members in the window / window length; broadcasts/s = broadcasts completed (received by every member)
 *    in the window / window length. Then it stops sending and waits (bounded, 30 s) until every member has
 *    every broadcast.
 *
 * Every broadcast carries a sequence number ("BS" + 10 digits + a filler derived from it, -s bytes in all). Each
 * member checks each message's full content and that sequence numbers arrive in order with no gap: gaps,
 * mismatches (wrong content), out-of-order or duplicate messages, unexpected messages (not text, wrong length,
 * not from the protocol), and messages missing at the end are counted and reported, never hidden. A broadcast a
 * member skipped counts as reached for the window's progress (so one gap does not stall the run) and as a gap.
 * A member closed by the server, a protocol error or a failed connection ends the measurement with "ok": false.
 *
 * Server frames of any length are parsed (7-bit, 16-bit and 64-bit lengths); frames may be split across reads
 * and many frames may come in one read; fragmented messages are reassembled (up to 64 KiB; longer messages
 * and single frames over 16 KiB are skipped and counted as unexpected). Server pings are answered with pongs
 * carrying the same payload. Client frames are masked with a fresh random key per frame.
 *
 * -z offers permessage-deflate (RFC 7692, "permessage-deflate; client_max_window_bits"); members where the server
 * accepts it inflate compressed messages (RSV1; a context per member unless the server answered
 * server_no_context_takeover) before checking them; "deflate_members" counts them. With server_no_context_takeover
 * a message whose compressed bytes equal one of the last ones inflated is not inflated again (a broadcast
 * compressed once for every member): "inflate_reused" counts those. -j fills each message after its
 * sequence header with JSON chat objects (numbered from the sequence number) instead of letters.
 *
 * Output: event lines, then one JSON line with the results and the client's own CPU use during the window.
 * Every phase has a deadline; alarm() bounds the whole run as a last resort.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wsclient.h"

#define RBUF_SIZE (256 * 1024)   /* one read() */
#define SMALL_FRAME (16 * 1024)  /* frames up to this payload are parsed whole; larger ones are skipped */
#define MAX_REST (32 * 1024)     /* bytes kept between reads: a partial frame header + small frame, or HTTP */
#define MAX_HTTP (16 * 1024)     /* handshake response head */
#define MAX_MSG (64 * 1024)      /* reassembled fragmented message */
#define MEMO_SLOTS 64            /* compressed messages remembered with what they inflate to (see on_readable) */
#define MEMO_IN 2048
#define MEMO_OUT 8192
#define RING 4096                /* completion counters, indexed by sequence number; must exceed the window */
#define MAX_EVENTS 4096
#define SEQ_DIGITS 10
#define MAX_SIZE 4096            /* largest -s (the sender's buffers hold a window of such frames) */

enum { ST_IDLE, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_DEAD };

struct conn {
    int fd;
    unsigned char state;
    unsigned char want_out;   /* EPOLLOUT is registered */
    unsigned char ready;      /* received a probe: it is in the room */
    unsigned char in_frag;    /* inside a fragmented data message */
    unsigned char frag_op;
    unsigned char frag_over;  /* the fragmented message outgrew MAX_MSG: unexpected */
    unsigned char skipping;   /* skipping the payload of a frame over SMALL_FRAME */
    uint64_t skip_left;
    unsigned char *rest;      /* bytes of an incomplete frame (or HTTP head) kept from the last read */
    uint32_t rest_len;
    unsigned char *out;       /* bytes the kernel has not accepted yet */
    uint32_t out_len, out_cap;
    unsigned char *frag;
    uint32_t frag_len;
    uint32_t expect;          /* next sequence number this member should receive */
    uint64_t received;        /* sequenced broadcasts received */
    char accept[32];          /* expected Sec-WebSocket-Accept */
    wsc_deflate_answer dfl;   /* what the server answered to -z */
    z_stream *inflater;       /* made at the first compressed message */
};

static struct {
    wsc_url url;
    int members;
    int rounds;
    int window;
    double duration;
    double warmup;
    int size;
    int max_pending;
    double open_timeout;
    double round_timeout;
    double drain_timeout;
    int deflate;
    int json;
} cfg = {.members = 1000, .rounds = 20, .window = 16, .duration = 5.0, .warmup = 1.0, .size = 64,
         .max_pending = 100, .open_timeout = 120.0, .round_timeout = 10.0, .drain_timeout = 30.0};

static struct {
    uint64_t gaps, mismatches, out_of_order, unexpected, protocol, closed, connect_failed, handshake_failed;
    uint64_t write_failed, pings, probes_sent, reads, frames, delivered, deflate_members, bytes_in, inflate_reused;
} st;

static struct conn *conns;
static int epfd;
static struct sockaddr_storage server_addr, server2_addr;
static socklen_t server_addrlen, server2_addrlen;
static int have_server2;
static wsc_url url2;
static int started, opened, failed, ready_count;
static uint32_t sent;       /* last sequence number sent (0: none) */
static uint32_t done_seq;   /* every member has reached every sequence number <= done_seq */
static uint32_t ring_count[RING];
static uint64_t ring_sent_ns[RING];
static uint64_t ring_done_ns[RING];
static uint64_t ring_first_ns[2][RING]; /* first arrival per member parity (with -U: even = -u's node, odd = -U's):
                                           * when the kernel received the bytes (SO_TIMESTAMPNS), not when this one
                                           * thread got round to reading them */
static uint64_t ring_seen_ns[2][RING];  /* the same, when this thread read them */
static uint64_t rx_ns;                  /* the kernel's receive time of the read being handled (CLOCK_MONOTONIC) */
static int64_t realtime_to_mono;        /* CLOCK_MONOTONIC - CLOCK_REALTIME, at the start */
static char fatal_msg[512];
static uint64_t rng_state;
static unsigned char rbuf[MAX_REST + RBUF_SIZE];

/* ------------------------------------------------------------------------------------------------ */
/* small helpers                                                                                       */

static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fatal(const char *fmt, ...) {
    if (fatal_msg[0]) return; /* keep the first cause */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fatal_msg, sizeof fatal_msg, fmt, ap);
    va_end(ap);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fanout: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory");
    return p;
}

static void event_line(const char *name) {
    printf("{\"event\":\"%s\"}\n", name);
    fflush(stdout);
}

/* ------------------------------------------------------------------------------------------------ */
/* payloads                                                                                            */

/* "B" + kind ('S' sequenced, 'P' probe) + 10 digits + '-' + filler derived from the number, size bytes. */
static void make_payload(unsigned char *p, char kind, uint32_t seq) {
    char digits[SEQ_DIGITS + 1];
    int i;
    snprintf(digits, sizeof digits, "%0*u", SEQ_DIGITS, seq);
    p[0] = 'B';
    p[1] = (unsigned char)kind;
    memcpy(p + 2, digits, SEQ_DIGITS);
    p[2 + SEQ_DIGITS] = '-';
    for (i = 3 + SEQ_DIGITS; i < cfg.size; i++) p[i] = (unsigned char)('a' + (seq * 7u + (unsigned)i) % 26u);
    if (cfg.json) { /* chat objects numbered from seq, cut at size (the header keeps the message a bench one) */
        static const char *users[] = {"alice", "bob", "carol", "dave"};
        char item[160];
        int at = 3 + SEQ_DIGITS;
        for (unsigned k = 0; at < cfg.size; k++) {
            int n = snprintf(item, sizeof item,
                             "{\"type\":\"chat\",\"room\":\"lobby\",\"user\":\"%s\",\"id\":%u,\"text\":\"hello number %u\"},",
                             users[(seq + k) % 4], seq * 16 + k, k);
            if (n > cfg.size - at) n = cfg.size - at;
            memcpy(p + at, item, (size_t)n);
            at += n;
        }
    }
}

static int parse_seq(const unsigned char *p, uint32_t *seq) {
    uint64_t v = 0;
    int i;
    for (i = 0; i < SEQ_DIGITS; i++) {
        if (p[2 + i] < '0' || p[2 + i] > '9') return -1;
        v = v * 10 + (uint64_t)(p[2 + i] - '0');
    }
    if (v > UINT32_MAX) return -1;
    *seq = (uint32_t)v;
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* sockets                                                                                             */

static void set_events(struct conn *c, int want_out) {
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.u32 = (uint32_t)(c - conns)};
    if ((int)c->want_out == want_out) return;
    c->want_out = (unsigned char)want_out;
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl MOD: %s", strerror(errno));
}

static void kill_conn(struct conn *c) {
    if (c->state == ST_DEAD) return;
    c->state = ST_DEAD;
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    failed++; /* `opened` keeps counting members that ever opened */
}

static void flush_out(struct conn *c) {
    while (c->out_len) {
        ssize_t n = write(c->fd, c->out, c->out_len);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            st.write_failed++;
            fatal("member %d: write failed: %s", (int)(c - conns), strerror(errno));
            kill_conn(c);
            return;
        }
        memmove(c->out, c->out + n, c->out_len - (size_t)n);
        c->out_len -= (uint32_t)n;
    }
    if (c->state != ST_CONNECTING) set_events(c, c->out_len > 0);
}

static void send_bytes(struct conn *c, const unsigned char *data, size_t len) {
    if (c->state == ST_DEAD) return;
    if (c->out_len == 0 && c->state != ST_CONNECTING) {
        ssize_t n;
        do n = write(c->fd, data, len);
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN) {
            st.write_failed++;
            fatal("member %d: write failed: %s", (int)(c - conns), strerror(errno));
            kill_conn(c);
            return;
        }
        if (n > 0) data += n, len -= (size_t)n;
        if (!len) return;
    }
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 256;
        while (cap < c->out_len + len) cap *= 2;
        unsigned char *p = realloc(c->out, cap);
        if (!p) die("out of memory");
        c->out = p;
        c->out_cap = (uint32_t)cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += (uint32_t)len;
    if (c->state != ST_CONNECTING) set_events(c, 1);
}

/* A masked client frame (FIN set) with a fresh key, appended to buf; returns its length. */
static size_t build_frame(unsigned char *buf, int opcode, const unsigned char *payload, size_t len) {
    uint32_t key = (uint32_t)wsc_rng(&rng_state);
    size_t h = wsc_frame_header(buf, opcode, len, (const unsigned char *)&key);
    memcpy(buf + h, payload, len);
    wsc_mask(buf + h, len, (const unsigned char *)&key);
    return h + len;
}

static void start_conn(int i) {
    struct conn *c = &conns[i];
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
    if (have_server2 && (i & 1))
        c->fd = wsc_connect(&server2_addr, server2_addrlen);
    else
        c->fd = wsc_connect(&server_addr, server_addrlen);
    if (c->fd < 0) {
        st.connect_failed++;
        fatal("socket()/connect(): %s%s", strerror(errno), errno == EMFILE ? " (raise RLIMIT_NOFILE?)" : "");
        c->state = ST_DEAD;
        failed++;
        return;
    }
    int one = 1;
    setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one); /* see on_readable */
    c->state = ST_CONNECTING;
    c->want_out = 1;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl ADD: %s", strerror(errno));
}

static void send_handshake(struct conn *c) {
    char req[1600];
    size_t n = wsc_handshake_request(req, sizeof req, have_server2 && ((c - conns) & 1) ? &url2 : &cfg.url,
                                     cfg.deflate ? WSC_DEFLATE_OFFER : "", &rng_state, c->accept);
    c->state = ST_HANDSHAKE;
    set_events(c, 0);
    send_bytes(c, (unsigned char *)req, n);
}

/* ------------------------------------------------------------------------------------------------ */
/* progress accounting                                                                                 */

static void advance(void) {
    while (done_seq < sent && ring_count[(done_seq + 1) % RING] >= (uint32_t)cfg.members) {
        done_seq++;
        ring_done_ns[done_seq % RING] = wsc_now_ns();
    }
}

/* Member c has reached every sequence number up to seq (received it, or skipped past it: a gap). */
static void reach_upto(struct conn *c, uint32_t seq) {
    uint32_t s;
    for (s = c->expect; s <= seq; s++) ring_count[s % RING]++;
    c->expect = seq + 1;
    if (ring_count[(done_seq + 1) % RING] >= (uint32_t)cfg.members) advance();
}

/* The expected content of broadcast seq, made once per sequence number (every member checks every message: with
 * -j, making the 1 KiB of JSON again for each of 10,000 members would cost this client more than the server). */
#define WANT_SLOTS 64
static const unsigned char *expected(uint32_t seq) {
    static unsigned char want[WANT_SLOTS][MAX_SIZE];
    static uint32_t made[WANT_SLOTS]; /* seq + 1 of the content in each slot; 0: none */
    uint32_t slot = seq % WANT_SLOTS;
    if (made[slot] != seq + 1) {
        make_payload(want[slot], 'S', seq);
        made[slot] = seq + 1;
    }
    return want[slot];
}

static void on_message(struct conn *c, int opcode, const unsigned char *p, size_t len, int oversized) {
    const unsigned char *want;
    uint32_t seq;
    if (oversized || opcode != 1 || len != (size_t)cfg.size || p[0] != 'B') {
        st.unexpected++;
        return;
    }
    if (p[1] == 'P') { /* barrier probe */
        if (!c->ready) c->ready = 1, ready_count++;
        return;
    }
    if (p[1] != 'S' || parse_seq(p, &seq) < 0) {
        st.unexpected++;
        return;
    }
    want = expected(seq);
    if (memcmp(want, p, len) != 0 || seq == 0 || seq > sent) {
        st.mismatches++;
        return;
    }
    if (seq < c->expect) { /* duplicate or out of order */
        st.out_of_order++;
        return;
    }
    if (seq > c->expect) st.gaps += seq - c->expect;
    c->received++;
    st.delivered++;
    if (!ring_first_ns[(c - conns) & 1][seq % RING]) {
        ring_first_ns[(c - conns) & 1][seq % RING] = rx_ns;
        ring_seen_ns[(c - conns) & 1][seq % RING] = wsc_now_ns();
    }
    reach_upto(c, seq);
}

static void on_frame(struct conn *c, int fin, int opcode, const unsigned char *p, size_t len) {
    unsigned char pong[256];
    int idx = (int)(c - conns);
    st.frames++;
    switch (opcode) {
    case 0:
        if (!c->in_frag) {
            st.protocol++;
            fatal("member %d: continuation frame outside a fragmented message", idx);
            kill_conn(c);
            return;
        }
        if (!c->frag_over && c->frag_len + len <= MAX_MSG) {
            memcpy(c->frag + c->frag_len, p, len);
            c->frag_len += (uint32_t)len;
        } else {
            c->frag_over = 1;
        }
        if (fin) {
            on_message(c, c->frag_op, c->frag, c->frag_len, c->frag_over);
            c->in_frag = 0;
        }
        return;
    case 1:
    case 2:
        if (c->in_frag) {
            st.protocol++;
            fatal("member %d: new data frame inside a fragmented message", idx);
            kill_conn(c);
            return;
        }
        if (fin) {
            on_message(c, opcode, p, len, 0);
            return;
        }
        if (!c->frag) c->frag = xmalloc(MAX_MSG);
        c->in_frag = 1, c->frag_op = (unsigned char)opcode, c->frag_over = 0, c->frag_len = (uint32_t)len;
        memcpy(c->frag, p, len); /* len <= SMALL_FRAME < MAX_MSG */
        return;
    case 8: {
        int code = len >= 2 ? (p[0] << 8 | p[1]) : 1005;
        st.closed++;
        fatal("member %d: server sent close %d %.*s", idx, code, len > 2 ? (int)len - 2 : 0, p + 2);
        kill_conn(c);
        return;
    }
    case 9:
        st.pings++;
        send_bytes(c, pong, build_frame(pong, 10, p, len));
        return;
    case 10:
        return;
    default:
        st.protocol++;
        fatal("member %d: reserved opcode %d", idx, opcode);
        kill_conn(c);
    }
}

/* Parse frames in p[0..n); returns the bytes consumed (the rest is an incomplete frame). */
static size_t parse_frames(struct conn *c, const unsigned char *p, size_t n) {
    size_t off = 0;
    int idx = (int)(c - conns);
    while (c->state == ST_OPEN) {
        if (c->skipping) {
            uint64_t take = c->skip_left < n - off ? c->skip_left : n - off;
            off += take;
            c->skip_left -= take;
            if (c->skip_left) break;
            c->skipping = 0;
            continue;
        }
        wsc_frame f;
        if (!wsc_parse_frame_header(p + off, n - off, &f)) break;
        int fin = f.fin, opcode = f.opcode;
        uint64_t len = f.len;
        size_t hdr = f.header;
        if (f.rsv == 0x40 && c->dfl.on && fin && (opcode == 1 || opcode == 2) && len <= SMALL_FRAME && !f.masked) {
            static unsigned char inflated[MAX_MSG];
            /* Messages inflated from an empty context, kept (a small table by a hash of the compressed bytes):
             * where the server compresses a broadcast once for every member (server_no_context_takeover), the
             * next members' identical bytes are compared, not inflated again (an inflate costs ~10x the compare;
             * without this the client is the bottleneck). With a context, every member's bytes differ. */
            static unsigned char memo_in[MEMO_SLOTS][MEMO_IN], memo_out[MEMO_SLOTS][MEMO_OUT];
            static size_t memo_in_len[MEMO_SLOTS], memo_out_len[MEMO_SLOTS];
            if (n - off < hdr + len) break;
            const unsigned char *z = p + off + hdr;
            uint32_t slot = 0;
            if (c->dfl.server_no_context && len <= MEMO_IN) {
                uint32_t h = 2166136261u; /* FNV-1a */
                for (uint64_t i = 0; i < len; i++) h = (h ^ z[i]) * 16777619u;
                slot = h % MEMO_SLOTS;
                if (memo_in_len[slot] == len && memcmp(memo_in[slot], z, (size_t)len) == 0) {
                    st.inflate_reused++;
                    on_frame(c, 1, opcode, memo_out[slot], memo_out_len[slot]);
                    off += hdr + (size_t)len;
                    continue;
                }
            }
            if (c->inflater == NULL) {
                c->inflater = calloc(1, sizeof *c->inflater);
                if (c->inflater == NULL || inflateInit2(c->inflater, -15) != Z_OK) die("zlib: no inflater");
            }
            long m = wsc_inflate_message(c->inflater, c->dfl.server_no_context, z, (size_t)len, inflated,
                                         sizeof inflated);
            if (m >= 0 && m <= MEMO_OUT && c->dfl.server_no_context && len <= MEMO_IN) {
                memcpy(memo_in[slot], z, (size_t)len);
                memcpy(memo_out[slot], inflated, (size_t)m);
                memo_in_len[slot] = (size_t)len, memo_out_len[slot] = (size_t)m;
            }
            if (m < 0) {
                st.protocol++;
                fatal("member %d: invalid compressed message", idx);
                kill_conn(c);
                break;
            }
            on_frame(c, 1, opcode, inflated, (size_t)m);
            off += hdr + (size_t)len;
            continue;
        }
        if (f.rsv) {
            st.protocol++;
            fatal("member %d: reserved bits set", idx);
            kill_conn(c);
            break;
        }
        if (f.masked) {
            st.protocol++;
            fatal("member %d: masked server frame", idx);
            kill_conn(c);
            break;
        }
        if (opcode >= 8 && (!fin || len > 125)) {
            st.protocol++;
            fatal("member %d: bad control frame", idx);
            kill_conn(c);
            break;
        }
        if (len > SMALL_FRAME) { /* not a bench message: skip it without buffering, count it */
            st.frames++;
            if (opcode == 0 && c->in_frag) {
                c->frag_over = 1;
                if (fin) st.unexpected++, c->in_frag = 0;
            } else if (opcode == 1 || opcode == 2) {
                if (fin) st.unexpected++;
                else c->in_frag = 1, c->frag_op = (unsigned char)opcode, c->frag_over = 1, c->frag_len = 0;
                if (!c->frag) c->frag = xmalloc(MAX_MSG);
            } else {
                st.protocol++;
                fatal("member %d: oversized frame with opcode %d", idx, opcode);
                kill_conn(c);
                break;
            }
            off += hdr;
            c->skipping = 1;
            c->skip_left = len;
            continue;
        }
        if (n - off < hdr + len) break;
        on_frame(c, fin, opcode, p + off + hdr, (size_t)len);
        off += hdr + (size_t)len;
    }
    return off;
}

/* Handshake response in p[0..n): returns bytes consumed, 0 if incomplete; kills the member when invalid. */
static size_t parse_response(struct conn *c, const unsigned char *p, size_t n) {
    long head = wsc_handshake_response(p, n, c->accept, MAX_HTTP);
    const unsigned char *cr;
    if (head == WSC_HS_INCOMPLETE) return 0;
    if (head < 0) {
        st.handshake_failed++;
        cr = memchr(p, '\r', n);
        if (head == WSC_HS_TOO_LONG)
            fatal("member %d: handshake response head too long", (int)(c - conns));
        else if (head == WSC_HS_REFUSED)
            fatal("member %d: handshake refused: %.*s", (int)(c - conns), (int)(cr ? cr - p : 40), p);
        else
            fatal("member %d: missing or wrong Sec-WebSocket-Accept or Upgrade", (int)(c - conns));
        kill_conn(c);
        return 0;
    }
    c->state = ST_OPEN;
    opened++;
    if (cfg.deflate) {
        c->dfl = wsc_deflate_parse(p, (size_t)head);
        if (c->dfl.on) st.deflate_members++;
    }
    return (size_t)head;
}

static void on_readable(struct conn *c) {
    unsigned char *base = rbuf + MAX_REST;
    ssize_t n;
    size_t have, used = 0;
    /* recvmsg for the kernel's receive timestamp (SO_TIMESTAMPNS, set on every member socket): with thousands
     * of members readable at once, this thread may read a member's bytes milliseconds after they arrived. */
    struct iovec iov = {.iov_base = base, .iov_len = RBUF_SIZE};
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control};
    do n = recvmsg(c->fd, &msg, 0);
    while (n < 0 && errno == EINTR);
    rx_ns = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); n > 0 && cm != NULL; cm = CMSG_NXTHDR(&msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof ts);
            rx_ns = (uint64_t)((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + realtime_to_mono);
        }
    if (rx_ns == 0) rx_ns = wsc_now_ns();
    if (n > 0) st.bytes_in += (uint64_t)n;
    if (n < 0) {
        if (errno == EAGAIN) return;
        st.closed++;
        fatal("member %d: read failed: %s", (int)(c - conns), strerror(errno));
        kill_conn(c);
        return;
    }
    if (n == 0) {
        st.closed++;
        fatal("member %d: the server closed the TCP connection%s", (int)(c - conns),
              c->state == ST_HANDSHAKE ? " during the handshake" : "");
        kill_conn(c);
        return;
    }
    st.reads++;
    base -= c->rest_len; /* the kept partial frame goes right before the new bytes */
    memcpy(base, c->rest, c->rest_len);
    have = c->rest_len + (size_t)n;
    c->rest_len = 0;
    if (c->state == ST_HANDSHAKE) {
        used = parse_response(c, base, have);
        if (c->state != ST_OPEN) {
            if (c->state == ST_HANDSHAKE) goto keep;
            return;
        }
    }
    used += parse_frames(c, base + used, have - used);
    if (c->state == ST_DEAD) return;
keep:
    if (have - used > MAX_REST) {
        st.protocol++;
        fatal("member %d: %zu bytes of an incomplete frame", (int)(c - conns), have - used);
        kill_conn(c);
        return;
    }
    if (have > used) {
        if (!c->rest) c->rest = xmalloc(MAX_REST);
        memmove(c->rest, base + used, have - used);
        c->rest_len = (uint32_t)(have - used);
    }
}

static void on_writable(struct conn *c) {
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            st.connect_failed++;
            fatal("connect: %s", strerror(err));
            kill_conn(c);
            return;
        }
        send_handshake(c);
        return;
    }
    flush_out(c);
}

/* One epoll_wait and the handling of its events. */
static void poll_once(int timeout_ms) {
    static struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(epfd, evs, MAX_EVENTS, timeout_ms), i;
    if (n < 0) {
        if (errno == EINTR) return;
        die("epoll_wait: %s", strerror(errno));
    }
    for (i = 0; i < n; i++) {
        struct conn *c = &conns[evs[i].data.u32];
        if (c->state == ST_DEAD) continue;
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
        if (c->state != ST_DEAD && (evs[i].events & EPOLLOUT)) on_writable(c);
    }
}

static int ms_until(uint64_t deadline) {
    uint64_t t = wsc_now_ns();
    if (t >= deadline) return 0;
    uint64_t ms = (deadline - t + 999999) / 1000000;
    return ms > 50 ? 50 : (int)ms;
}

/* Send sequenced broadcasts from the sender until `count` are in flight (one write for all of them). */
static void top_up(uint32_t count) {
    static unsigned char buf[RING * 160];
    unsigned char payload[MAX_MSG];
    size_t len = 0;
    uint64_t t = wsc_now_ns();
    while (sent - done_seq < count && len + (size_t)cfg.size + 14 <= sizeof buf) {
        sent++;
        ring_count[sent % RING] = 0;
        ring_sent_ns[sent % RING] = t;
        ring_first_ns[0][sent % RING] = ring_first_ns[1][sent % RING] = 0;
        ring_seen_ns[0][sent % RING] = ring_seen_ns[1][sent % RING] = 0;
        make_payload(payload, 'S', sent);
        len += build_frame(buf + len, 1, payload, (size_t)cfg.size);
    }
    if (len) send_bytes(&conns[0], buf, len);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, int n, double q) {
    if (n == 0) return 0.0;
    double pos = q * (n - 1);
    int lo = (int)pos;
    if (lo + 1 >= n) return sorted[n - 1];
    return sorted[lo] + (sorted[lo + 1] - sorted[lo]) * (pos - lo);
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static void usage(void) {
    fprintf(stderr,
            "usage: fanout -u ws://HOST:PORT/PATH [-n members] [-K latency rounds] [-W window] [-d seconds]\n"
            "              [-w warmup seconds] [-s payload bytes] [-C max handshakes in progress]\n"
            "              [-T open timeout s] [-R per-broadcast timeout s] [-z] [-j]\n");
    exit(2);
}

static void parse_url(const char *url) {
    int rc;
    if (wsc_parse_url(url, &cfg.url) != 0) die("not a ws:// URL (or too long): %s", url);
    rc = wsc_resolve(&cfg.url, &server_addr, &server_addrlen);
    if (rc != 0) die("cannot resolve %s:%s: %s", cfg.url.host, cfg.url.port, gai_strerror(rc));
}

int main(int argc, char **argv) {
    const char *url = NULL;
    int opt, i, k;
    uint64_t t_open0, t_open1, deadline;
    double *lat, *first_even, *first_odd, *seen_even, *seen_odd;
    int lat_n = 0;
    uint64_t win_t0 = 0, win_t1 = 0, win_del0 = 0, win_del1 = 0, win_reads0 = 0, win_reads1 = 0;
    uint64_t win_frames0 = 0, win_frames1 = 0;
    uint32_t win_done0 = 0, win_done1 = 0;
    double cpu0 = 0, cpu1 = 0;
    int probes = 0;

    while ((opt = getopt(argc, argv, "u:U:n:K:W:d:w:s:C:T:R:zj")) != -1) {
        switch (opt) {
        case 'u': url = optarg; break;
        case 'U':
            if (wsc_parse_url(optarg, &url2) != 0) die("not a ws:// URL (or too long): %s", optarg);
            if (wsc_resolve(&url2, &server2_addr, &server2_addrlen) != 0) die("cannot resolve %s", optarg);
            have_server2 = 1;
            break;
        case 'n': cfg.members = atoi(optarg); break;
        case 'K': cfg.rounds = atoi(optarg); break;
        case 'W': cfg.window = atoi(optarg); break;
        case 'd': cfg.duration = atof(optarg); break;
        case 'w': cfg.warmup = atof(optarg); break;
        case 's': cfg.size = atoi(optarg); break;
        case 'C': cfg.max_pending = atoi(optarg); break;
        case 'T': cfg.open_timeout = atof(optarg); break;
        case 'R': cfg.round_timeout = atof(optarg); break;
        case 'z': cfg.deflate = 1; break;
        case 'j': cfg.json = 1; break;
        default: usage();
        }
    }
    if (!url || cfg.members < 1 || cfg.rounds < 0 || cfg.window < 1 || cfg.window >= RING / 2 ||
        cfg.duration <= 0 || cfg.warmup < 0 || cfg.size < 3 + SEQ_DIGITS || cfg.size > MAX_SIZE || cfg.max_pending < 1)
        usage();
    parse_url(url);
    alarm((unsigned)(cfg.open_timeout + cfg.rounds * cfg.round_timeout + 30 * 0.5 + cfg.warmup + cfg.duration +
                     cfg.drain_timeout + 60));

    {
        int fd = open("/dev/urandom", O_RDONLY);
        if (fd < 0 || read(fd, &rng_state, sizeof rng_state) != (ssize_t)sizeof rng_state) rng_state = wsc_now_ns();
        if (fd >= 0) close(fd);
        rng_state |= 1;
    }

    conns = calloc((size_t)cfg.members, sizeof *conns);
    lat = calloc((size_t)cfg.rounds + 1, sizeof *lat);
    first_even = calloc((size_t)cfg.rounds + 1, sizeof *lat);
    first_odd = calloc((size_t)cfg.rounds + 1, sizeof *lat);
    seen_even = calloc((size_t)cfg.rounds + 1, sizeof *lat);
    seen_odd = calloc((size_t)cfg.rounds + 1, sizeof *lat);
    if (!conns || !lat || !first_even || !first_odd || !seen_even || !seen_odd) die("out of memory");
    {
        struct timespec mono, real;
        clock_gettime(CLOCK_MONOTONIC, &mono);
        clock_gettime(CLOCK_REALTIME, &real);
        realtime_to_mono = ((int64_t)mono.tv_sec - (int64_t)real.tv_sec) * 1000000000 + (mono.tv_nsec - real.tv_nsec);
    }
    for (i = 0; i < cfg.members; i++) conns[i].fd = -1, conns[i].expect = 1;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1: %s", strerror(errno));

    /* 1. open every member */
    t_open0 = wsc_now_ns();
    deadline = t_open0 + (uint64_t)(cfg.open_timeout * 1e9);
    while (!fatal_msg[0] && opened < cfg.members) {
        while (started < cfg.members && started - opened - failed < cfg.max_pending && !fatal_msg[0])
            start_conn(started++);
        if (wsc_now_ns() >= deadline) {
            fatal("only %d of %d members open after %.0f s", opened, cfg.members, cfg.open_timeout);
            break;
        }
        poll_once(ms_until(deadline));
    }
    t_open1 = wsc_now_ns();
    if (!fatal_msg[0]) event_line("open");

    /* 2. barrier: every member is in the room */
    while (!fatal_msg[0] && ready_count < cfg.members) {
        unsigned char payload[MAX_SIZE], frame[MAX_SIZE + 16];
        if (probes == 20) {
            fatal("%d of %d members never received a probe broadcast (not in the room?)", cfg.members - ready_count,
                  cfg.members);
            break;
        }
        make_payload(payload, 'P', (uint32_t)probes++);
        st.probes_sent++;
        send_bytes(&conns[0], frame, build_frame(frame, 1, payload, (size_t)cfg.size));
        deadline = wsc_now_ns() + 500000000ull;
        while (!fatal_msg[0] && ready_count < cfg.members && wsc_now_ns() < deadline) poll_once(ms_until(deadline));
    }

    /* 3. latency: one broadcast at a time */
    for (k = 0; k < cfg.rounds && !fatal_msg[0]; k++) {
        top_up(1);
        deadline = wsc_now_ns() + (uint64_t)(cfg.round_timeout * 1e9);
        while (!fatal_msg[0] && done_seq < sent && wsc_now_ns() < deadline) poll_once(ms_until(deadline));
        if (done_seq < sent) {
            if (!fatal_msg[0])
                fatal("broadcast %u reached %u of %d members in %.0f s", sent, ring_count[sent % RING], cfg.members,
                      cfg.round_timeout);
            break;
        }
        first_even[lat_n] = (double)(ring_first_ns[0][sent % RING] - ring_sent_ns[sent % RING]) / 1e6;
        first_odd[lat_n] = ring_first_ns[1][sent % RING]
                               ? (double)(ring_first_ns[1][sent % RING] - ring_sent_ns[sent % RING]) / 1e6
                               : 0.0;
        seen_even[lat_n] = (double)(ring_seen_ns[0][sent % RING] - ring_sent_ns[sent % RING]) / 1e6;
        seen_odd[lat_n] = ring_seen_ns[1][sent % RING]
                              ? (double)(ring_seen_ns[1][sent % RING] - ring_sent_ns[sent % RING]) / 1e6
                              : 0.0;
        lat[lat_n++] = (double)(ring_done_ns[sent % RING] - ring_sent_ns[sent % RING]) / 1e6;
    }

    /* 4. throughput: W broadcasts in flight */
    if (!fatal_msg[0]) {
        uint64_t t_start = wsc_now_ns();
        uint64_t t_measure = t_start + (uint64_t)(cfg.warmup * 1e9);
        uint64_t t_end = t_measure + (uint64_t)(cfg.duration * 1e9);
        int measuring = 0;
        for (;;) {
            uint64_t t;
            top_up((uint32_t)cfg.window);
            poll_once(10);
            if (fatal_msg[0]) break;
            t = wsc_now_ns();
            if (!measuring && t >= t_measure) {
                measuring = 1;
                event_line("measure_start");
                win_t0 = wsc_now_ns(), win_del0 = st.delivered, win_done0 = done_seq, win_reads0 = st.reads;
                win_frames0 = st.frames, cpu0 = cpu_seconds();
            } else if (measuring && t >= t_end) {
                win_t1 = wsc_now_ns(), win_del1 = st.delivered, win_done1 = done_seq, win_reads1 = st.reads;
                win_frames1 = st.frames, cpu1 = cpu_seconds();
                event_line("measure_end");
                break;
            }
        }
        /* drain: every member gets every broadcast sent */
        deadline = wsc_now_ns() + (uint64_t)(cfg.drain_timeout * 1e9);
        while (!fatal_msg[0] && done_seq < sent && wsc_now_ns() < deadline) poll_once(ms_until(deadline));
        if (!fatal_msg[0] && done_seq < sent)
            fatal("after %.0f s, broadcast %u had reached only %u of %d members", cfg.drain_timeout, done_seq + 1,
                  ring_count[(done_seq + 1) % RING], cfg.members);
    }

    /* results */
    {
        uint64_t missing = 0, received = 0;
        double win_s = win_t1 > win_t0 ? (double)(win_t1 - win_t0) / 1e9 : 0.0;
        double mean = 0.0;
        int errors;
        for (i = 0; i < cfg.members; i++) {
            received += conns[i].received;
            if (conns[i].expect <= sent) missing += sent + 1 - conns[i].expect;
        }
        for (i = 0; i < lat_n; i++) mean += lat[i] / lat_n;
        qsort(lat, (size_t)lat_n, sizeof *lat, cmp_double);
        qsort(first_even, (size_t)lat_n, sizeof *lat, cmp_double);
        qsort(first_odd, (size_t)lat_n, sizeof *lat, cmp_double);
        qsort(seen_even, (size_t)lat_n, sizeof *lat, cmp_double);
        qsort(seen_odd, (size_t)lat_n, sizeof *lat, cmp_double);
        errors = st.gaps || st.mismatches || st.out_of_order || st.unexpected || st.protocol || st.closed ||
                 st.connect_failed || st.handshake_failed || st.write_failed || missing || fatal_msg[0];
        printf("{\"members\":%d,\"opened\":%d,\"open_s\":%.3f,\"size\":%d,\"window\":%d,\"probes\":%d,", cfg.members,
               opened, (double)(t_open1 - t_open0) / 1e9, cfg.size, cfg.window, probes);
        printf("\"latency_rounds\":%d,\"latency_ms_p50\":%.3f,\"latency_ms_p90\":%.3f,\"latency_ms_min\":%.3f,"
               "\"latency_ms_max\":%.3f,\"latency_ms_mean\":%.3f,",
               lat_n, percentile(lat, lat_n, 0.5), percentile(lat, lat_n, 0.9), lat_n ? lat[0] : 0.0,
               lat_n ? lat[lat_n - 1] : 0.0, mean);
        /* The first member of each parity to get a broadcast: with -U, the first on each node. */
        printf("\"first_even_ms_p50\":%.3f,\"first_odd_ms_p50\":%.3f,", percentile(first_even, lat_n, 0.5),
               percentile(first_odd, lat_n, 0.5));
        printf("\"seen_even_ms_p50\":%.3f,\"seen_odd_ms_p50\":%.3f,", percentile(seen_even, lat_n, 0.5),
               percentile(seen_odd, lat_n, 0.5));

        printf("\"window_s\":%.3f,\"deliveries\":%llu,\"deliveries_per_s\":%.1f,\"broadcasts\":%u,"
               "\"broadcasts_per_s\":%.1f,\"frames_per_read\":%.2f,\"cpu_pct\":%.1f,",
               win_s, (unsigned long long)(win_del1 - win_del0), win_s ? (double)(win_del1 - win_del0) / win_s : 0.0,
               win_done1 - win_done0, win_s ? (double)(win_done1 - win_done0) / win_s : 0.0,
               win_reads1 > win_reads0 ? (double)(win_frames1 - win_frames0) / (double)(win_reads1 - win_reads0) : 0.0,
               win_s ? 100.0 * (cpu1 - cpu0) / win_s : 0.0);
        printf("\"sent\":%u,\"received\":%llu,\"missing\":%llu,\"gaps\":%llu,\"mismatches\":%llu,"
               "\"out_of_order\":%llu,\"unexpected\":%llu,\"protocol_errors\":%llu,\"closed\":%llu,"
               "\"connect_failed\":%llu,\"handshake_failed\":%llu,\"write_failed\":%llu,\"pings\":%llu,",
               sent, (unsigned long long)received, (unsigned long long)missing, (unsigned long long)st.gaps,
               (unsigned long long)st.mismatches, (unsigned long long)st.out_of_order,
               (unsigned long long)st.unexpected, (unsigned long long)st.protocol, (unsigned long long)st.closed,
               (unsigned long long)st.connect_failed, (unsigned long long)st.handshake_failed,
               (unsigned long long)st.write_failed, (unsigned long long)st.pings);
        printf("\"deflate_members\":%llu,\"inflate_reused\":%llu,\"bytes_in\":%llu,",
               (unsigned long long)st.deflate_members, (unsigned long long)st.inflate_reused,
               (unsigned long long)st.bytes_in);
        printf("\"ok\":%s,\"error\":", errors ? "false" : "true");
        json_str(fatal_msg);
        printf("}\n");
        fflush(stdout);
        for (i = 0; i < cfg.members; i++)
            if (conns[i].fd >= 0) close(conns[i].fd);
        return errors ? 1 : 0;
    }
}
