/* The C half of the protocol layer (snow_rt_py/protocol/): what mask.py, utf8.py and frames.py also do in Python,
 * for the paths where Python is too slow. Compiled into three objects by build_ffi.py:
 *   - the extension module snow_rt_py._speedups (what mask.py calls, and what the tests compare against the Python
 *     implementations);
 *   - the extension module snow_rt_py.protocol._protocol_core (included into _protocol_core.c: its fast receive);
 *   - build/libsnow_ws.so, whose reply fast path (snow_rt_py/abi/snow_ws_replies.c) encodes frames and checks
 *     UTF-8 with these functions instead of calling into Python.
 * No I/O, no state, no Python API. */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* One simple frame found by snow_scan_simple(). */
typedef struct SnowSimpleFrame {
    int opcode;     /* 1 text, 2 binary */
    int compressed; /* RSV1 set (permessage-deflate, RFC 7692 §6): only found when the caller allows it */
    size_t offset;  /* where the payload starts; its masking key is the 4 octets before it */
    size_t length; /* payload octets */
} SnowSimpleFrame;

/* RFC 6455 §5.3: octet i of the payload is XORed with octet i % 4 of the 4-byte masking key.
 *
 * The bulk runs 8 octets per step: the key is laid out twice in an 8-byte word (byte order in memory,
 * so it is endian-neutral), and each step XORs one 8-byte word. Loads and stores go through memcpy, so
 * unaligned buffers are fine and there is no strict-aliasing UB; compilers turn them into plain moves,
 * and at -O3 the loop is vectorised further. Every 8-byte step starts at a multiple of 4, so the key
 * phase of the tail is simply i % 4.
 */

static uint64_t snow_key_word(const unsigned char *key)
{
    unsigned char twice[8];
    uint64_t word;
    memcpy(twice, key, 4);
    memcpy(twice + 4, key, 4);
    memcpy(&word, twice, 8);
    return word;
}

/* dst[0:len] = src[0:len] ^ key. src and dst must not overlap (use snow_mask_inplace for that).
 * key points to exactly 4 octets. */
void snow_mask_copy(const char *src_, size_t len, const char *key_, char *dst_)
{
    const unsigned char *restrict src = (const unsigned char *)src_;
    const unsigned char *key = (const unsigned char *)key_;
    unsigned char *restrict dst = (unsigned char *)dst_;
    uint64_t k = snow_key_word(key);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= k;
        memcpy(dst + i, &w, 8);
    }
    for (; i < len; i++)
        dst[i] = (unsigned char)(src[i] ^ key[i & 3]);
}

/* buf[0:len] ^= key, in place. key points to exactly 4 octets and must not lie inside buf. */
void snow_mask_inplace(char *buf_, size_t len, const char *key_)
{
    unsigned char *buf = (unsigned char *)buf_;
    const unsigned char *key = (const unsigned char *)key_;
    uint64_t k = snow_key_word(key);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, buf + i, 8);
        w ^= k;
        memcpy(buf + i, &w, 8);
    }
    for (; i < len; i++)
        buf[i] = (unsigned char)(buf[i] ^ key[i & 3]);
}

/* 1 if s[0..n) is valid UTF-8 as Python's strict decoder sees it (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF), else 0. ASCII runs are checked 8 octets per step. */
int snow_utf8_valid(const char *s_, size_t n)
{
    const unsigned char *s = (const unsigned char *)s_;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i], c1;
        if (c < 0x80) {
            uint64_t w;
            if (i + 8 <= n) {
                memcpy(&w, s + i, 8);
                if ((w & 0x8080808080808080ULL) == 0) {
                    i += 8;
                    continue;
                }
            }
            i++;
            continue;
        }
        if (c < 0xC2 || c > 0xF4)
            return 0;
        if (c < 0xE0) {
            if (n - i < 2 || (s[i + 1] & 0xC0) != 0x80)
                return 0;
            i += 2;
            continue;
        }
        if (c < 0xF0) {
            if (n - i < 3)
                return 0;
            c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80)
                return 0;
            if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F))
                return 0; /* overlong, surrogate */
            i += 3;
            continue;
        }
        if (n - i < 4)
            return 0;
        c1 = s[i + 1];
        if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 > 0x8F))
            return 0; /* overlong, above U+10FFFF */
        i += 4;
    }
    return 1;
}

/* RFC 6455 §5.2: the size of the header of an unmasked frame carrying len octets (the shortest length form). */
size_t snow_frame_header_size(uint64_t len)
{
    return len < 126 ? 2 : len < 65536 ? 4 : 10;
}

/* Write the header of an unmasked final frame (FIN set, no RSV bit) with opcode and len octets of payload to
 * out (room for 10 octets); returns its size. frames.frame_header() in Python. */
size_t snow_frame_header(char *out_, int opcode, uint64_t len)
{
    unsigned char *out = (unsigned char *)out_;
    size_t head = snow_frame_header_size(len), k;
    out[0] = (unsigned char)(0x80 | (opcode & 0x0F));
    if (head == 2) {
        out[1] = (unsigned char)len;
    } else if (head == 4) {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
    } else {
        out[1] = 127;
        for (k = 0; k < 8; k++)
            out[2 + k] = (unsigned char)(len >> (56 - 8 * k));
    }
    return head;
}

/* The common case of RFC 6455 §5.2 input, for the protocol's C part (snow_rt_py/protocol/_protocol_core.c: take_simple): how many
 * whole "simple" client frames begin data[0..n), and where each one's payload is. A simple frame is a complete
 * unfragmented text or binary frame (FIN set, no RSV bit -- or RSV1 alone when rsv1 is nonzero: a compressed
 * message, RFC 7692 §6 -- opcode 1 or 2), masked, with a 7- or 16-bit length of at most max_payload octets. The scan stops at the first frame that is not simple or not complete: that frame and
 * everything after it are left to the full parser (protocol/framing.py), which then sees a stream that starts on
 * a frame boundary -- so the events are the same as if the full parser had read everything. Called only while the
 * connection is at rest (open, nothing buffered, no message in progress); text payloads are not checked here.
 *
 * frames[i] receives the opcode, whether RSV1 is set, the payload's offset (its masking key is the 4 octets before
 * it) and its length; at most max_frames are found. Returns the number found; *consumed is the octets they take. */
size_t snow_scan_simple(const char *data_, size_t n, size_t max_payload, int rsv1, SnowSimpleFrame *frames,
                        size_t max_frames, size_t *consumed)
{
    const unsigned char *data = (const unsigned char *)data_;
    const unsigned char b0_mask = rsv1 ? 0xBF : 0xFF; /* RSV1 ignored by the test below when allowed */
    size_t pos = 0, count = 0;
    while (count < max_frames && n - pos >= 6) {
        unsigned char b0 = data[pos] & b0_mask, b1 = data[pos + 1];
        size_t len = b1 & 0x7F, head = 6;
        if ((b0 != 0x81 && b0 != 0x82) || b1 < 0x80 || len == 127)
            break;
        if (len == 126) {
            if (n - pos < 8)
                break;
            len = ((size_t)data[pos + 2] << 8) | data[pos + 3];
            head = 8;
        }
        if (len > max_payload || n - pos - head < len)
            break;
        frames[count].opcode = b0 & 0x0F;
        frames[count].compressed = (data[pos] & 0x40) != 0;
        frames[count].offset = pos + head;
        frames[count].length = len;
        count++;
        pos += head + len;
    }
    *consumed = pos;
    return count;
}
