/* wsclient.h -- the WebSocket client pieces (RFC 6455, client side) that bench/loadgen.c and bench/fanout.c share:
 * ws:// URLs, non-blocking TCP sockets, the opening handshake (request, and the check of the response), masked
 * client frames and the headers of server frames. Static inline functions with no global state: each program keeps
 * its own connections, buffers, counters and error reporting. Linux (epoll programs), C99 with GNU extensions.
 */
#ifndef SNOW_BENCH_WSCLIENT_H
#define SNOW_BENCH_WSCLIENT_H

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------------ */
/* time and randomness                                                                                 */

static inline uint64_t wsc_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift64* over *state (never 0). */
static inline uint64_t wsc_rng(uint64_t *state) {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

/* ------------------------------------------------------------------------------------------------ */
/* SHA-1 (FIPS 180-4) and base64, only for the handshake's Sec-WebSocket-Accept                        */

static inline uint32_t wsc_rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static inline void wsc_sha1_block(uint32_t h[5], const unsigned char *p) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = wsc_rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t t = wsc_rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = wsc_rol32(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static inline void wsc_sha1(const unsigned char *msg, size_t len, unsigned char out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t full = len / 64 * 64;
    for (size_t i = 0; i < full; i += 64) wsc_sha1_block(h, msg + i);
    unsigned char tail[128];
    size_t rem = len - full;
    memset(tail, 0, sizeof tail);
    memcpy(tail, msg + full, rem);
    tail[rem] = 0x80;
    size_t tlen = rem + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) tail[tlen - 1 - i] = (unsigned char)(bits >> (8 * i));
    wsc_sha1_block(h, tail);
    if (tlen == 128) wsc_sha1_block(h, tail + 64);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (unsigned char)(h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(h[i] >> 8);
        out[4 * i + 3] = (unsigned char)h[i];
    }
}

/* base64 of in[0..len) into out (4 * ceil(len / 3) characters and a NUL). */
static inline void wsc_base64(const unsigned char *in, size_t len, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

/* ------------------------------------------------------------------------------------------------ */
/* URLs and sockets                                                                                    */

typedef struct wsc_url {
    char host[300]; /* without the brackets of an IPv6 literal */
    char port[16];
    char path[1024]; /* the request target, query included */
} wsc_url;

/* Split ws://HOST[:PORT][/PATH] (HOST may be [IPv6]); port defaults to 80, path to "/". 0, or -1 if the URL is not
 * ws:// or does not fit. */
static inline int wsc_parse_url(const char *url, wsc_url *u) {
    const char *p, *slash, *colon;
    int n;
    if (strncmp(url, "ws://", 5) != 0) return -1;
    p = url + 5;
    slash = strchr(p, '/');
    if (!slash) slash = p + strlen(p);
    n = snprintf(u->path, sizeof u->path, "%s", *slash ? slash : "/");
    if (n < 0 || (size_t)n >= sizeof u->path) return -1;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(slash - p));
        if (!rb) return -1;
        n = snprintf(u->host, sizeof u->host, "%.*s", (int)(rb - p - 1), p + 1);
        colon = rb + 1 < slash && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(slash - p));
        n = snprintf(u->host, sizeof u->host, "%.*s", (int)((colon ? colon : slash) - p), p);
    }
    if (n < 0 || (size_t)n >= sizeof u->host) return -1;
    if (colon) n = snprintf(u->port, sizeof u->port, "%.*s", (int)(slash - colon - 1), colon + 1);
    else n = snprintf(u->port, sizeof u->port, "80");
    return n < 0 || (size_t)n >= sizeof u->port ? -1 : 0;
}

/* Resolve u's host and port into *addr. 0, or getaddrinfo's error code (gai_strerror tells why). */
static inline int wsc_resolve(const wsc_url *u, struct sockaddr_storage *addr, socklen_t *addrlen) {
    struct addrinfo hints, *res;
    int rc;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0) return rc;
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* A non-blocking TCP socket (TCP_NODELAY, close-on-exec) whose connect() to addr has started: the fd, or -1 with
 * errno set (socket() or connect() failed; nothing is left open). The connection is up when it becomes writable. */
static inline int wsc_connect(const struct sockaddr_storage *addr, socklen_t addrlen) {
    int one = 1, saved;
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)addr, addrlen) < 0 && errno != EINPROGRESS) {
        saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* ------------------------------------------------------------------------------------------------ */
/* the opening handshake                                                                               */

#define WSC_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Write the upgrade request for u, with a fresh Sec-WebSocket-Key drawn from *rng, into req (cap bytes) and the
 * Sec-WebSocket-Accept the server must answer into accept. extra: more header lines, each ending in "\r\n" (or "").
 * Returns the request's length, 0 if it does not fit. */
static inline size_t wsc_handshake_request(char *req, size_t cap, const wsc_url *u, const char *extra, uint64_t *rng,
                                           char accept[32]) {
    unsigned char raw[16], digest[20];
    char key[32], cat[80];
    int n;
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = wsc_rng(rng);
        memcpy(raw + i, &r, 8);
    }
    wsc_base64(raw, 16, key);
    n = snprintf(cat, sizeof cat, "%s" WSC_GUID, key);
    wsc_sha1((const unsigned char *)cat, (size_t)n, digest);
    wsc_base64(digest, 20, accept);
    n = snprintf(req, cap,
                 "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                 u->path, u->host, u->port, key, extra);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

enum {
    WSC_HS_INCOMPLETE = 0,  /* no complete response head yet */
    WSC_HS_TOO_LONG = -1,   /* more than max_head bytes without the end of the head */
    WSC_HS_REFUSED = -2,    /* not "HTTP/1.1 101" */
    WSC_HS_BAD_HEADERS = -3 /* no "Upgrade: websocket", or a missing or wrong Sec-WebSocket-Accept */
};

/* Check the handshake response at buf[0..len): the length of its head when it is a valid 101 for accept, else one
 * of the WSC_HS_* values above. */
static inline long wsc_handshake_response(const unsigned char *buf, size_t len, const char *accept, size_t max_head) {
    const unsigned char *end = memmem(buf, len, "\r\n\r\n", 4), *p, *eol;
    int accept_ok = 0, upgrade_ok = 0;
    if (end == NULL) return len > max_head ? WSC_HS_TOO_LONG : WSC_HS_INCOMPLETE;
    if ((size_t)(end - buf) < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0) return WSC_HS_REFUSED;
    for (p = (const unsigned char *)memmem(buf, (size_t)(end + 2 - buf), "\r\n", 2) + 2; p < end; p = eol + 2) {
        const unsigned char *colon, *v, *ve;
        size_t nlen, vlen;
        eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
        colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL) continue;
        nlen = (size_t)(colon - p);
        for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++) {
        }
        for (ve = eol; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--) {
        }
        vlen = (size_t)(ve - v);
        if (nlen == 20 && strncasecmp((const char *)p, "Sec-WebSocket-Accept", 20) == 0)
            accept_ok = vlen == strlen(accept) && memcmp(v, accept, vlen) == 0;
        else if (nlen == 7 && strncasecmp((const char *)p, "Upgrade", 7) == 0)
            upgrade_ok = vlen == 9 && strncasecmp((const char *)v, "websocket", 9) == 0;
    }
    return accept_ok && upgrade_ok ? (long)(end + 4 - buf) : WSC_HS_BAD_HEADERS;
}

/* ------------------------------------------------------------------------------------------------ */
/* frames                                                                                              */

/* XOR data[0..len) with the 4-byte mask, 8 bytes at a time (the 1 MiB workloads spend their user time here). */
static inline void wsc_mask(unsigned char *data, size_t len, const unsigned char mask[4]) {
    uint64_t m8;
    unsigned char mb[8];
    size_t i = 0;
    for (int j = 0; j < 8; j++) mb[j] = mask[j & 3];
    memcpy(&m8, mb, 8);
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, data + i, 8);
        w ^= m8;
        memcpy(data + i, &w, 8);
    }
    for (; i < len; i++) data[i] ^= mask[i & 3];
}

#define WSC_MAX_CLIENT_HEADER 14

/* The header of a masked client frame (FIN set) of len payload bytes, mask included, written to hdr (room for
 * WSC_MAX_CLIENT_HEADER bytes). Returns its length; the payload that follows must be masked with wsc_mask. */
static inline size_t wsc_frame_header(unsigned char *hdr, int opcode, uint64_t len, const unsigned char mask[4]) {
    size_t h = 0;
    hdr[h++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        hdr[h++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (unsigned char)(len >> 8);
        hdr[h++] = (unsigned char)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) hdr[h++] = (unsigned char)(len >> (8 * i));
    }
    memcpy(hdr + h, mask, 4);
    return h + 4;
}

/* The header of a frame from the server. */
typedef struct wsc_frame {
    int fin, rsv, opcode, masked; /* rsv: the three RSV bits (0x70 of the first byte) */
    uint64_t len;                 /* payload length */
    size_t header;                /* bytes before the payload (the masking key included when masked) */
} wsc_frame;

/* Decode the frame header at p[0..n): 1 with *f filled, or 0 if the header is not complete yet. */
static inline int wsc_parse_frame_header(const unsigned char *p, size_t n, wsc_frame *f) {
    if (n < 2) return 0;
    f->fin = p[0] >> 7;
    f->rsv = p[0] & 0x70;
    f->opcode = p[0] & 0x0f;
    f->masked = p[1] >> 7;
    f->len = p[1] & 0x7f;
    f->header = 2;
    if (f->len == 126) {
        if (n < 4) return 0;
        f->len = (uint64_t)p[2] << 8 | p[3];
        f->header = 4;
    } else if (f->len == 127) {
        if (n < 10) return 0;
        f->len = 0;
        for (int i = 0; i < 8; i++) f->len = f->len << 8 | p[2 + i];
        f->header = 10;
    }
    if (f->masked) f->header += 4;
    return n >= f->header;
}

/* ------------------------------------------------------------------------------------------------ */
/* permessage-deflate (RFC 7692), for the clients' -z option (link with -lz)                         */

#include <zlib.h>

#define WSC_DEFLATE_OFFER "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"

/* What the server answered to WSC_DEFLATE_OFFER, from the response head buf[0..head). */
typedef struct wsc_deflate_answer {
    int on;                    /* permessage-deflate accepted */
    int server_no_context;     /* server_no_context_takeover: every server message inflates from an empty context */
    int client_window_bits;    /* client_max_window_bits answered (15 if none) */
} wsc_deflate_answer;

static inline wsc_deflate_answer wsc_deflate_parse(const unsigned char *buf, size_t head) {
    wsc_deflate_answer a = {0, 0, 15};
    const unsigned char *p = memmem(buf, head, "\r\n", 2);
    while (p != NULL && p + 2 < buf + head) {
        const unsigned char *line = p + 2, *eol = memmem(line, (size_t)(buf + head - line), "\r\n", 2);
        if (eol == NULL) break;
        if ((size_t)(eol - line) > 25 && strncasecmp((const char *)line, "Sec-WebSocket-Extensions:", 25) == 0) {
            char value[512];
            size_t n = (size_t)(eol - line) - 25;
            if (n >= sizeof value) n = sizeof value - 1;
            memcpy(value, line + 25, n);
            value[n] = '\0';
            if (strstr(value, "permessage-deflate") != NULL) {
                const char *w = strstr(value, "client_max_window_bits=");
                a.on = 1;
                a.server_no_context = strstr(value, "server_no_context_takeover") != NULL;
                if (w != NULL) a.client_window_bits = atoi(w + 23);
            }
        }
        p = eol;
    }
    return a;
}

/* Compress one whole message from an empty context with a window of wbits (what any agreed parameters allow):
 * the payload of a frame with RSV1 set (RFC 7692 7.2.1: the final 00 00 ff ff removed). Returns a malloc'd
 * buffer (its length in *out_len), NULL on failure. */
static inline unsigned char *wsc_deflate_message(const unsigned char *data, size_t len, int wbits, size_t *out_len) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -wbits, 8, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
    size_t cap = deflateBound(&z, (uLong)len) + 16;
    unsigned char *out = malloc(cap);
    if (out == NULL) return NULL;
    z.next_in = (unsigned char *)data;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_SYNC_FLUSH);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_OK || n < 4) {
        free(out);
        return NULL;
    }
    *out_len = n - 4;
    return out;
}

/* Inflate one compressed message (RFC 7692 7.2.2: 00 00 ff ff appended) with *z (inflateInit2(z, -15) done by the
 * caller; reset first when the sender keeps no context) into out[0..cap). Returns its length, or -1 if it is not
 * valid deflate or longer than cap. */
static inline long wsc_inflate_message(z_stream *z, int reset, const unsigned char *in, size_t len, unsigned char *out,
                                       size_t cap) {
    static const unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};
    if (reset && inflateReset(z) != Z_OK) return -1;
    z->next_out = out;
    z->avail_out = (uInt)cap;
    z->next_in = (unsigned char *)in;
    z->avail_in = (uInt)len;
    int rc = inflate(z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) return -1;
    if (z->avail_in != 0) return -1; /* out of room */
    z->next_in = (unsigned char *)tail;
    z->avail_in = 4;
    rc = inflate(z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) return -1;
    return (long)(cap - z->avail_out);
}

#endif /* SNOW_BENCH_WSCLIENT_H */
