/* Robustness: random and mutated bytes into the decoder never crash, never read or write out
 * of bounds (build with -fsanitize=address,undefined), and every frame the decoder accepts
 * decodes to a message or a clean error code. Usage: fuzz [iterations] [seed]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fb_protocol.h"

static uint32_t s;
static uint32_t rnd(void) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
}

int main(int argc, char **argv) {
    unsigned long iterations = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000ul;
    unsigned long i;
    unsigned long accepted = 0, decoded = 0, dropped = 0;
    fb_decoder_t dec;
    uint8_t wire[FB_MAX_WIRE];
    fb_msg_t msg;
    s = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 12345u;
    if (s == 0u) s = 1u;
    fb_decoder_init(&dec);
    for (i = 0; i < iterations; i++) {
        size_t n, k;
        uint32_t mode = rnd() % 4u;
        if (mode == 0u) { /* pure noise, zeros more likely than chance */
            n = rnd() % 700u;
            for (k = 0; k < n && k < sizeof wire; k++) {
                uint32_t r = rnd();
                wire[k] = (r & 0x700u) == 0u ? 0u : (uint8_t)r;
            }
            n = k;
        } else { /* a real message frame, then mutated */
            static const uint8_t types[] = {0x01, 0x02, 0x10, 0x11, 0x12, 0x20, 0x21,
                                            0x30, 0x31, 0x32, 0x33, 0x34, 0x3F};
            memset(&msg, 0, sizeof msg);
            msg.type = types[rnd() % sizeof types];
            for (k = 0; k < sizeof msg.u; k++) ((uint8_t *)&msg.u)[k] = (uint8_t)rnd();
            n = fb_encode_message(&msg, (uint16_t)rnd(), wire, sizeof wire);
            if (n == 0u) { fprintf(stderr, "encode failed for type %u\n", msg.type); return 1; }
            if (mode >= 2u) {
                uint32_t flips = 1u + rnd() % 4u;
                while (flips--) wire[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8u));
            }
            if (mode == 3u && n > 2u) n = 1u + rnd() % (n - 1u); /* truncated */
        }
        for (k = 0; k < n; k++) {
            int st = fb_decoder_push(&dec, wire[k]);
            if (st == FB_FRAME) {
                int err;
                accepted++;
                if (dec.frame.length > FB_MAX_PAYLOAD) { fprintf(stderr, "length\n"); return 1; }
                err = fb_msg_decode(&dec.frame, &msg);
                if (err == FB_OK) decoded++;
                else if (err < 0 || err > FB_E_BAD_FRAME) { fprintf(stderr, "err %d\n", err); return 1; }
            } else if (st < 0) {
                dropped++;
            } else if (st != FB_NONE) {
                fprintf(stderr, "status %d\n", st);
                return 1;
            }
        }
    }
    printf("fuzz: %lu inputs, %lu frames accepted (%lu decoded), %lu dropped; counters "
           "frames=%lu crc=%lu bad=%lu oversize=%lu\n",
           iterations, accepted, decoded, dropped, (unsigned long)dec.stats.frames,
           (unsigned long)dec.stats.crc_errors, (unsigned long)dec.stats.bad_frames,
           (unsigned long)dec.stats.oversize);
    return 0;
}
