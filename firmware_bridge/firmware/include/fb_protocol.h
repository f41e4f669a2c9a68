/*
 * raas serial protocol, MCU side: framing (COBS + CRC-32C), the streaming decoder and the
 * messages. C99, no heap, fixed buffers, no dependency beyond <stdint.h>/<stddef.h>/<string.h>.
 * The specification is docs/protocol-serial.md; the Python twin is raas_firmware_bridge.
 *
 * Receiving (byte at a time, e.g. from the UART interrupt or a DMA ring):
 *     fb_decoder_t dec;  fb_decoder_init(&dec);
 *     int st = fb_decoder_push(&dec, byte);
 *     if (st == FB_FRAME) { fb_msg_t m; int err = fb_msg_decode(&dec.frame, &m); ... }
 *     else if (st < 0) { a frame was dropped: st names why, dec.stats counts it }
 * Sending:
 *     uint8_t out[FB_MAX_WIRE]; size_t n = fb_encode_message(&msg, seq, out, sizeof out);
 *     (n == 0: the buffer was too small or the message type unknown)
 */
#ifndef FB_PROTOCOL_H
#define FB_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- framing ------------------------------------------------------------------------------ */

#define FB_PROTOCOL_VERSION 1u
#define FB_MIN_PROTOCOL_VERSION 1u
#define FB_HEADER_BYTES 6u  /* version u8 | msg_type u8 | seq u16 | length u16 */
#define FB_CRC_BYTES 4u     /* CRC-32C over header and payload, little-endian */
#define FB_OVERHEAD (FB_HEADER_BYTES + FB_CRC_BYTES)
#define FB_MAX_PAYLOAD 512u
#define FB_MAX_RAW (FB_OVERHEAD + FB_MAX_PAYLOAD)               /* 522 */
#define FB_MAX_ENCODED (FB_MAX_RAW + (FB_MAX_RAW + 253u) / 254u) /* 525 */
#define FB_MAX_WIRE (FB_MAX_ENCODED + 1u)                        /* with the 0x00 delimiter */

/* fb_decoder_push results. Negative: a candidate frame was dropped, for this reason. */
enum {
    FB_NONE = 0,  /* byte consumed, no frame ended */
    FB_FRAME = 1, /* dec->frame holds a good frame until the next push */
    FB_ERR_CRC = -1,
    FB_ERR_COBS = -2,     /* a COBS code byte points past the delimiter */
    FB_ERR_SHORT = -3,    /* fewer than header + CRC bytes */
    FB_ERR_LENGTH = -4,   /* header length field != payload bytes received */
    FB_ERR_OVERSIZE = -5  /* longer than FB_MAX_ENCODED; the rest up to 0x00 is skipped */
};

uint32_t fb_crc32c_update(uint32_t crc, const uint8_t *data, size_t len);
uint32_t fb_crc32c(const uint8_t *data, size_t len);

typedef struct {
    uint8_t version;
    uint8_t msg_type;
    uint16_t seq;
    uint16_t length;
    const uint8_t *payload; /* points into the decoder's buffer */
} fb_frame_t;

typedef struct {
    uint32_t frames, crc_errors, bad_frames, oversize, resyncs, garbage_bytes;
} fb_decoder_stats_t;

typedef struct {
    uint8_t buf[FB_MAX_RAW]; /* unstuffed header + payload + crc */
    uint16_t len;            /* unstuffed bytes so far */
    uint16_t encoded;        /* stuffed bytes since the last delimiter */
    uint8_t code;            /* current COBS code byte */
    uint8_t left;            /* data bytes left in the current COBS block */
    uint8_t discarding;      /* oversize: skip to the next delimiter */
    fb_frame_t frame;
    fb_decoder_stats_t stats;
} fb_decoder_t;

void fb_decoder_init(fb_decoder_t *dec);
/* Forget a partial frame (counters kept). */
void fb_decoder_reset(fb_decoder_t *dec);
int fb_decoder_push(fb_decoder_t *dec, uint8_t byte);

/* Stuff header + payload + CRC into out and append the 0x00 delimiter.
 * Returns the bytes written, 0 if len > FB_MAX_PAYLOAD or cap is too small. */
size_t fb_encode_frame(uint8_t *out, size_t cap, uint8_t version, uint8_t msg_type, uint16_t seq,
                       const uint8_t *payload, size_t len);

/* ---- messages ----------------------------------------------------------------------------- */

#define FB_N_ACTUATORS 20u
#define FB_N_JOINTS 24u
#define FB_INVALID (-32768)              /* int16 "no valid reading" */
#define FB_NO_SEQ UINT64_C(0xFFFFFFFFFFFFFFFF) /* applied_seq before any targets */

/* Units: positions/targets 1e-4 rad, velocities 1e-3 rad/s, efforts 1e-3 effort unit,
 * temperatures 0.01 degC, times in microseconds. */

enum fb_msg_type {
    FB_MSG_HELLO = 0x01,
    FB_MSG_HELLO_ACK = 0x02,
    FB_MSG_SET_TARGETS = 0x10,
    FB_MSG_STATE_REQUEST = 0x11,
    FB_MSG_STATE = 0x12,
    FB_MSG_TRIGGER = 0x20,
    FB_MSG_TRIGGER_ACK = 0x21,
    FB_MSG_HEARTBEAT = 0x30,
    FB_MSG_FAULT = 0x31,
    FB_MSG_ESTOP = 0x32,
    FB_MSG_RESET = 0x33,
    FB_MSG_RESET_ACK = 0x34,
    FB_MSG_ERROR = 0x3F
};

enum fb_board_kind { FB_BOARD_HAND = 1, FB_BOARD_TRIGGER = 2 };

enum fb_fault_flag {
    FB_FAULT_WATCHDOG = 1u << 0,
    FB_FAULT_ESTOP = 1u << 1,
    FB_FAULT_OVERTEMP = 1u << 2,
    FB_FAULT_SENSOR = 1u << 3,
    FB_FAULT_MOTOR = 1u << 4,
    FB_FAULT_POWER = 1u << 5,
    FB_FAULT_BOOTED = 1u << 6,
    FB_FAULT_LINK = 1u << 7
};

enum fb_fault_code {
    FB_FC_WATCHDOG = 1, FB_FC_ESTOP, FB_FC_OVERTEMP, FB_FC_SENSOR,
    FB_FC_MOTOR, FB_FC_POWER, FB_FC_BOOTED, FB_FC_LINK
};

/* ERROR message codes; fb_msg_decode returns one of these (0 = ok). */
enum fb_error_code {
    FB_OK = 0,
    FB_E_UNKNOWN_TYPE = 1,
    FB_E_BAD_LENGTH = 2,
    FB_E_VERSION_UNSUPPORTED = 3,
    FB_E_NOT_READY = 4,
    FB_E_BAD_VALUE = 5,
    FB_E_FAULTED = 6,
    FB_E_WRONG_BOARD = 7,
    FB_E_BAD_FRAME = 8
};

enum fb_estop_reason { FB_ESTOP_HOST = 1, FB_ESTOP_BUTTON = 2, FB_ESTOP_FIRMWARE = 3 };

typedef struct { uint8_t min_version, max_version; } fb_hello_t;
typedef struct {
    uint8_t version, board_kind, min_version, max_version, fw_major, fw_minor;
    uint16_t fw_patch, watchdog_ms, servo_hz;
    uint8_t actuator_count, joint_count;
    uint32_t serial_number;
} fb_hello_ack_t;
typedef struct { uint64_t target_seq; int16_t targets[FB_N_ACTUATORS]; } fb_set_targets_t;
typedef struct { uint64_t cycle; } fb_state_request_t;
typedef struct {
    uint64_t cycle, fw_time_us, applied_seq;
    uint32_t fault_flags;
    int16_t positions[FB_N_JOINTS], velocities[FB_N_JOINTS];
    int16_t efforts[FB_N_ACTUATORS], temperatures[FB_N_ACTUATORS];
} fb_state_t;
typedef struct { uint64_t cycle; } fb_trigger_t;
typedef struct { uint64_t cycle, hw_time_us; } fb_trigger_ack_t;
typedef struct { uint64_t time_us, echo_us; } fb_heartbeat_t;
typedef struct { uint16_t code; uint32_t flags, detail; } fb_fault_t;
typedef struct { uint16_t reason; } fb_estop_t;
typedef struct { uint32_t token; } fb_reset_t;
typedef struct { uint32_t token, fault_flags; } fb_reset_ack_t;
typedef struct { uint16_t code; uint8_t ref_type; uint16_t ref_seq; uint32_t detail; } fb_error_t;

typedef struct {
    uint8_t type; /* enum fb_msg_type */
    union {
        fb_hello_t hello;
        fb_hello_ack_t hello_ack;
        fb_set_targets_t set_targets;
        fb_state_request_t state_request;
        fb_state_t state;
        fb_trigger_t trigger;
        fb_trigger_ack_t trigger_ack;
        fb_heartbeat_t heartbeat;
        fb_fault_t fault;
        fb_estop_t estop;
        fb_reset_t reset;
        fb_reset_ack_t reset_ack;
        fb_error_t error;
    } u;
} fb_msg_t;

#define FB_MAX_MSG_PAYLOAD 204u /* STATE */

/* Payload length of a message type, 0 for an unknown type. */
size_t fb_msg_payload_len(uint8_t msg_type);
/* Decode a good frame. Returns FB_OK or the fb_error_code to answer with in an ERROR message.
 * HELLO and HELLO_ACK decode in any version and may be longer; others need exact lengths. */
int fb_msg_decode(const fb_frame_t *frame, fb_msg_t *out);
/* Payload bytes of msg into out; returns the length, 0 on unknown type or small cap. */
size_t fb_msg_encode(const fb_msg_t *msg, uint8_t *out, size_t cap);
/* A complete frame (FB_PROTOCOL_VERSION) for msg; returns the bytes written or 0. */
size_t fb_encode_message(const fb_msg_t *msg, uint16_t seq, uint8_t *out, size_t cap);
/* Highest version in both ranges, 0 if none. */
uint8_t fb_negotiate_version(uint8_t a_min, uint8_t a_max, uint8_t b_min, uint8_t b_max);

#ifdef __cplusplus
}
#endif
#endif /* FB_PROTOCOL_H */
