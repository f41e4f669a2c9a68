/* Unit tests of the MCU codec on the host, and the shared vectors both ways:
 * C decodes Python's bytes to the expected fields, and C encodes those fields to exactly
 * Python's bytes. The vectors come from `python -m raas_firmware_bridge.vectors`. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "fb_protocol.h"
#include "vectors.h"

static uint32_t crc_bitwise(const uint8_t *p, size_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    size_t i;
    int k;
    for (i = 0; i < n; i++) {
        crc ^= p[i];
        for (k = 0; k < 8; k++) {
            crc = (crc & 1u) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
    }
    return ~crc;
}

static uint32_t rng_state = 2463534242u;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void test_crc(void) {
    uint8_t buf[600];
    size_t i;
    CHECK(fb_crc32c((const uint8_t *)"123456789", 9) == 0xE3069283u, "check value");
    for (i = 0; i < sizeof buf; i++) {
        buf[i] = (uint8_t)rnd();
    }
    for (i = 0; i <= sizeof buf; i += 37) {
        CHECK(fb_crc32c(buf, i) == crc_bitwise(buf, i), "table == bitwise for %u bytes",
              (unsigned)i);
    }
    CHECK(fb_crc32c_update(fb_crc32c(buf, 100), buf + 100, 500) == fb_crc32c(buf, 600),
          "incremental");
}

#define EQ(f) ok = ok && (a->f == b->f)
#define EQA(f, n)                                                  \
    do {                                                           \
        unsigned i_;                                               \
        for (i_ = 0; i_ < (n); i_++) ok = ok && (a->f[i_] == b->f[i_]); \
    } while (0)

static int msg_equal(const fb_msg_t *a, const fb_msg_t *b) {
    int ok = a->type == b->type;
    if (!ok) return 0;
    switch (a->type) {
    case FB_MSG_HELLO: EQ(u.hello.min_version); EQ(u.hello.max_version); break;
    case FB_MSG_HELLO_ACK:
        EQ(u.hello_ack.version); EQ(u.hello_ack.board_kind); EQ(u.hello_ack.min_version);
        EQ(u.hello_ack.max_version); EQ(u.hello_ack.fw_major); EQ(u.hello_ack.fw_minor);
        EQ(u.hello_ack.fw_patch); EQ(u.hello_ack.watchdog_ms); EQ(u.hello_ack.servo_hz);
        EQ(u.hello_ack.actuator_count); EQ(u.hello_ack.joint_count);
        EQ(u.hello_ack.serial_number);
        break;
    case FB_MSG_SET_TARGETS:
        EQ(u.set_targets.target_seq); EQA(u.set_targets.targets, FB_N_ACTUATORS); break;
    case FB_MSG_STATE_REQUEST: EQ(u.state_request.cycle); break;
    case FB_MSG_STATE:
        EQ(u.state.cycle); EQ(u.state.fw_time_us); EQ(u.state.applied_seq);
        EQ(u.state.fault_flags); EQA(u.state.positions, FB_N_JOINTS);
        EQA(u.state.velocities, FB_N_JOINTS); EQA(u.state.efforts, FB_N_ACTUATORS);
        EQA(u.state.temperatures, FB_N_ACTUATORS);
        break;
    case FB_MSG_TRIGGER: EQ(u.trigger.cycle); break;
    case FB_MSG_TRIGGER_ACK: EQ(u.trigger_ack.cycle); EQ(u.trigger_ack.hw_time_us); break;
    case FB_MSG_HEARTBEAT: EQ(u.heartbeat.time_us); EQ(u.heartbeat.echo_us); break;
    case FB_MSG_FAULT: EQ(u.fault.code); EQ(u.fault.flags); EQ(u.fault.detail); break;
    case FB_MSG_ESTOP: EQ(u.estop.reason); break;
    case FB_MSG_RESET: EQ(u.reset.token); break;
    case FB_MSG_RESET_ACK: EQ(u.reset_ack.token); EQ(u.reset_ack.fault_flags); break;
    case FB_MSG_ERROR:
        EQ(u.error.code); EQ(u.error.ref_type); EQ(u.error.ref_seq); EQ(u.error.detail); break;
    default: return 0;
    }
    return ok;
}

/* Push bytes; return the number of FB_FRAME results and the last non-NONE status. */
static int push_all(fb_decoder_t *dec, const uint8_t *p, size_t n, int *last) {
    int frames = 0;
    size_t i;
    *last = FB_NONE;
    for (i = 0; i < n; i++) {
        int st = fb_decoder_push(dec, p[i]);
        if (st == FB_FRAME) frames++;
        if (st != FB_NONE) *last = st;
    }
    return frames;
}

static void test_vectors(void) {
    unsigned k;
    unsigned messages = 0, frames = 0, bad = 0;
    for (k = 0; k < FB_VECTOR_COUNT; k++) {
        const fb_vector_t *v = &fb_vectors[k];
        fb_decoder_t dec;
        int last;
        int got;
        uint8_t out[FB_MAX_WIRE];
        size_t n;
        fb_decoder_init(&dec);
        got = push_all(&dec, v->frame, v->frame_len, &last);
        if (v->kind == 2) {
            bad++;
            CHECK(got == 0 && last == v->error, "%s: status %d, expected %d", v->name, last,
                  v->error);
            continue;
        }
        /* C decodes Python's bytes */
        CHECK(got == 1 && last == FB_FRAME, "%s: %d frames, status %d", v->name, got, last);
        if (got != 1) continue;
        CHECK(dec.frame.msg_type == v->msg_type && dec.frame.seq == v->seq &&
                  dec.frame.version == v->version && dec.frame.length == v->payload_len &&
                  memcmp(dec.frame.payload, v->payload, v->payload_len) == 0,
              "%s: frame header or payload differs", v->name);
        /* C frames Python's payload into exactly Python's bytes */
        n = fb_encode_frame(out, sizeof out, v->version, v->msg_type, v->seq, v->payload,
                            v->payload_len);
        CHECK(n == v->frame_len && memcmp(out, v->frame, n) == 0, "%s: encoded frame differs",
              v->name);
        if (v->kind == 1) {
            frames++;
            continue;
        }
        messages++;
        {
            fb_msg_t m;
            int err;
            memset(&m, 0xA5, sizeof m);
            err = fb_msg_decode(&dec.frame, &m);
            CHECK(err == FB_OK, "%s: decode error %d", v->name, err);
            CHECK(msg_equal(&m, &v->msg), "%s: decoded fields differ", v->name);
            /* C encodes the fields to exactly Python's bytes */
            n = fb_encode_message(&v->msg, v->seq, out, sizeof out);
            CHECK(n == v->frame_len && memcmp(out, v->frame, n) == 0,
                  "%s: encoded message differs (%u vs %u bytes)", v->name, (unsigned)n,
                  (unsigned)v->frame_len);
        }
    }
    CHECK(messages >= 13 && frames >= 3 && bad >= 5, "vector coverage %u/%u/%u", messages,
          frames, bad);
    printf("vectors: %u messages, %u raw frames, %u bad frames agree with Python\n", messages,
           frames, bad);
}

static void test_stream_of_all_vectors(void) {
    /* every vector back to back, one byte at a time: good frames in order, bad ones counted */
    fb_decoder_t dec;
    unsigned k, good = 0, dropped = 0, expect_good = 0, expect_bad = 0;
    fb_decoder_init(&dec);
    for (k = 0; k < FB_VECTOR_COUNT; k++) {
        const fb_vector_t *v = &fb_vectors[k];
        size_t i;
        if (v->kind == 2) expect_bad++; else expect_good++;
        for (i = 0; i < v->frame_len; i++) {
            int st = fb_decoder_push(&dec, v->frame[i]);
            if (st == FB_FRAME) {
                good++;
                CHECK(dec.frame.seq == v->seq && dec.frame.msg_type == v->msg_type,
                      "stream: frame %u out of order", k);
            } else if (st < 0) {
                dropped++;
            }
        }
    }
    CHECK(good == expect_good && dropped == expect_bad, "stream: %u good %u dropped", good,
          dropped);
    CHECK(dec.stats.frames == good && dec.stats.resyncs == dropped, "stream counters");
}

static void test_resync_after_garbage(void) {
    fb_decoder_t dec;
    uint8_t payload[8] = {1, 0, 2, 0, 0, 3, 0, 4};
    uint8_t frame[FB_MAX_WIRE];
    uint8_t garbage[] = {0x17, 0x99, 0x42, 0x00};
    size_t n = fb_encode_frame(frame, sizeof frame, 1, FB_MSG_TRIGGER, 7, payload, 8);
    int last, got;
    fb_decoder_init(&dec);
    got = push_all(&dec, garbage, sizeof garbage, &last);
    CHECK(got == 0 && last < 0 && dec.stats.resyncs == 1, "garbage dropped");
    got = push_all(&dec, frame, n, &last);
    CHECK(got == 1 && dec.frame.seq == 7 && memcmp(dec.frame.payload, payload, 8) == 0,
          "frame after garbage");
    /* back-to-back delimiters are empty frames: ignored, not errors */
    got = push_all(&dec, (const uint8_t *)"\0\0\0", 3, &last);
    CHECK(got == 0 && last == FB_NONE && dec.stats.resyncs == 1, "empty frames ignored");
    /* a frame truncated by a delimiter is dropped, the next one decodes */
    push_all(&dec, frame, n / 2, &last);
    got = push_all(&dec, (const uint8_t *)"\0", 1, &last);
    CHECK(got == 0 && last < 0, "truncated frame dropped");
    got = push_all(&dec, frame, n, &last);
    CHECK(got == 1, "frame after truncation");
}

static void test_oversize_is_skipped_to_the_next_delimiter(void) {
    fb_decoder_t dec;
    uint8_t frame[FB_MAX_WIRE];
    size_t n = fb_encode_frame(frame, sizeof frame, 1, FB_MSG_HEARTBEAT, 3, NULL, 0);
    unsigned i, errors = 0;
    int last;
    fb_decoder_init(&dec);
    for (i = 0; i < 5000; i++) {
        if (fb_decoder_push(&dec, 0x01) < 0) errors++;
    }
    CHECK(errors == 1 && dec.stats.oversize == 1, "oversize reported once, got %u", errors);
    fb_decoder_push(&dec, 0x00);
    CHECK(push_all(&dec, frame, n, &last) == 1, "frame after oversize");
}

static void test_encoder_limits(void) {
    uint8_t payload[FB_MAX_PAYLOAD + 1];
    uint8_t out[FB_MAX_WIRE];
    memset(payload, 0x55, sizeof payload);
    CHECK(fb_encode_frame(out, sizeof out, 1, 1, 0, payload, FB_MAX_PAYLOAD) > 0, "max fits");
    CHECK(fb_encode_frame(out, sizeof out, 1, 1, 0, payload, FB_MAX_PAYLOAD + 1) == 0,
          "too long refused");
    CHECK(fb_encode_frame(out, 20, 1, 1, 0, payload, 100) == 0, "small buffer refused");
    {
        fb_msg_t m;
        m.type = 0x7E;
        CHECK(fb_encode_message(&m, 0, out, sizeof out) == 0, "unknown type refused");
    }
}

static void test_message_errors(void) {
    uint8_t payload[FB_MAX_MSG_PAYLOAD + 8];
    fb_frame_t f;
    fb_msg_t m;
    memset(payload, 0, sizeof payload);
    f.payload = payload;
    f.version = FB_PROTOCOL_VERSION;
    f.seq = 0;
    f.msg_type = 0x7E; f.length = 0;
    CHECK(fb_msg_decode(&f, &m) == FB_E_UNKNOWN_TYPE, "unknown type");
    f.msg_type = FB_MSG_STATE; f.length = 203;
    CHECK(fb_msg_decode(&f, &m) == FB_E_BAD_LENGTH, "state too short");
    f.length = 205;
    CHECK(fb_msg_decode(&f, &m) == FB_E_BAD_LENGTH, "state too long");
    f.msg_type = FB_MSG_TRIGGER; f.length = 8; f.version = 2;
    CHECK(fb_msg_decode(&f, &m) == FB_E_VERSION_UNSUPPORTED, "other version");
    f.msg_type = FB_MSG_HELLO; f.length = 7; payload[0] = 1; payload[1] = 5;
    CHECK(fb_msg_decode(&f, &m) == FB_OK && m.u.hello.max_version == 5,
          "a longer HELLO of another version still decodes");
    CHECK(fb_negotiate_version(1, 3, 2, 5) == 3, "negotiate overlap");
    CHECK(fb_negotiate_version(1, 1, 2, 3) == 0, "negotiate none");
}

int main(void) {
    test_crc();
    test_vectors();
    test_stream_of_all_vectors();
    test_resync_after_garbage();
    test_oversize_is_skipped_to_the_next_delimiter();
    test_encoder_limits();
    test_message_errors();
    printf("%d checks, %d failures\n", fb_checks, fb_failures);
    return fb_failures == 0 ? 0 : 1;
}
