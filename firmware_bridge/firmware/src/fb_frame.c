/* Framing: COBS-stuffed [header | payload | CRC-32C] + 0x00, and the byte-at-a-time decoder.
 * COBS is decoded on the fly (no second buffer): a code byte n says n-1 data bytes follow,
 * then a zero unless n == 0xFF or the frame ends. The encoder never emits a trailing empty
 * block after a 0xFF block, exactly like the Python `cobs` package, so both produce the same
 * bytes. */
#include <string.h>

#include "fb_protocol.h"

static void put_le16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

void fb_decoder_reset(fb_decoder_t *dec) {
    dec->len = 0;
    dec->encoded = 0;
    dec->code = 0;
    dec->left = 0;
    dec->discarding = 0;
}

void fb_decoder_init(fb_decoder_t *dec) {
    memset(dec, 0, sizeof *dec);
    fb_decoder_reset(dec);
}

static int drop(fb_decoder_t *dec, int reason) {
    dec->stats.resyncs++;
    dec->stats.garbage_bytes += dec->encoded;
    if (reason == FB_ERR_CRC) {
        dec->stats.crc_errors++;
    } else if (reason == FB_ERR_OVERSIZE) {
        dec->stats.oversize++;
    } else {
        dec->stats.bad_frames++;
    }
    return reason;
}

static int finish(fb_decoder_t *dec) {
    uint16_t body;
    uint32_t crc_rx;
    uint16_t length;
    if (dec->left != 0) {
        return drop(dec, FB_ERR_COBS);
    }
    if (dec->len < FB_OVERHEAD) {
        return drop(dec, FB_ERR_SHORT);
    }
    body = (uint16_t)(dec->len - FB_CRC_BYTES);
    crc_rx = (uint32_t)dec->buf[body] | ((uint32_t)dec->buf[body + 1u] << 8) |
             ((uint32_t)dec->buf[body + 2u] << 16) | ((uint32_t)dec->buf[body + 3u] << 24);
    if (fb_crc32c(dec->buf, body) != crc_rx) {
        return drop(dec, FB_ERR_CRC);
    }
    length = (uint16_t)(dec->buf[4] | (dec->buf[5] << 8));
    if (length != body - FB_HEADER_BYTES) {
        return drop(dec, FB_ERR_LENGTH);
    }
    dec->frame.version = dec->buf[0];
    dec->frame.msg_type = dec->buf[1];
    dec->frame.seq = (uint16_t)(dec->buf[2] | (dec->buf[3] << 8));
    dec->frame.length = length;
    dec->frame.payload = &dec->buf[FB_HEADER_BYTES];
    dec->stats.frames++;
    return FB_FRAME;
}

int fb_decoder_push(fb_decoder_t *dec, uint8_t byte) {
    int result = FB_NONE;
    if (byte == 0u) {
        if (dec->discarding) {
            dec->stats.garbage_bytes += dec->encoded;
        } else if (dec->encoded > 0u) {
            result = finish(dec);
        } /* else: an empty frame (back-to-back delimiters) is ignored */
        fb_decoder_reset(dec);
        return result;
    }
    dec->encoded++;
    if (dec->discarding) {
        return FB_NONE;
    }
    if (dec->encoded > FB_MAX_ENCODED) {
        dec->discarding = 1;
        return drop(dec, FB_ERR_OVERSIZE);
    }
    if (dec->left == 0u) { /* a code byte */
        if (dec->code != 0u && dec->code != 0xFFu) {
            if (dec->len >= FB_MAX_RAW) {
                dec->discarding = 1;
                return drop(dec, FB_ERR_OVERSIZE);
            }
            dec->buf[dec->len++] = 0u;
        }
        dec->code = byte;
        dec->left = (uint8_t)(byte - 1u);
    } else {
        if (dec->len >= FB_MAX_RAW) {
            dec->discarding = 1;
            return drop(dec, FB_ERR_OVERSIZE);
        }
        dec->buf[dec->len++] = byte;
        dec->left--;
    }
    return FB_NONE;
}

/* ---- encoder ---- */

typedef struct {
    uint8_t *out;
    size_t pos;      /* next write */
    size_t code_pos; /* where the current block's code byte goes */
    uint8_t code;
    uint8_t block_open;
    uint32_t crc;
} cobs_enc_t;

static void enc_put(cobs_enc_t *e, uint8_t b) {
    if (!e->block_open) {
        e->code_pos = e->pos++;
        e->code = 1u;
        e->block_open = 1u;
    }
    if (b == 0u) {
        e->out[e->code_pos] = e->code; /* the zero ends this block */
        e->code_pos = e->pos++;
        e->code = 1u;
        return;
    }
    e->out[e->pos++] = b;
    if (++e->code == 0xFFu) {
        e->out[e->code_pos] = e->code;
        e->block_open = 0u; /* the next block opens only if more bytes come */
    }
}

static void enc_bytes(cobs_enc_t *e, const uint8_t *p, size_t n) {
    e->crc = fb_crc32c_update(e->crc, p, n);
    while (n--) {
        enc_put(e, *p++);
    }
}

size_t fb_encode_frame(uint8_t *out, size_t cap, uint8_t version, uint8_t msg_type, uint16_t seq,
                       const uint8_t *payload, size_t len) {
    uint8_t header[FB_HEADER_BYTES];
    uint8_t crc[FB_CRC_BYTES];
    size_t raw = FB_OVERHEAD + len;
    cobs_enc_t e;
    if (len > FB_MAX_PAYLOAD || cap < raw + raw / 254u + 2u) {
        return 0u;
    }
    header[0] = version;
    header[1] = msg_type;
    put_le16(&header[2], seq);
    put_le16(&header[4], (uint16_t)len);
    e.out = out;
    e.pos = 0u;
    e.code_pos = 0u;
    e.code = 1u;
    e.block_open = 0u;
    e.crc = 0u;
    enc_bytes(&e, header, sizeof header);
    if (len > 0u) {
        enc_bytes(&e, payload, len);
    }
    crc[0] = (uint8_t)(e.crc & 0xFFu);
    crc[1] = (uint8_t)((e.crc >> 8) & 0xFFu);
    crc[2] = (uint8_t)((e.crc >> 16) & 0xFFu);
    crc[3] = (uint8_t)(e.crc >> 24);
    {
        size_t i;
        for (i = 0; i < sizeof crc; i++) {
            enc_put(&e, crc[i]);
        }
    }
    if (e.block_open) {
        e.out[e.code_pos] = e.code;
    }
    e.out[e.pos++] = 0u;
    return e.pos;
}
