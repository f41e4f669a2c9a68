/* Messages: fixed little-endian layouts (docs/protocol-serial.md), read and written byte by
 * byte so the code is independent of the MCU's endianness and alignment. */
#include "fb_protocol.h"

/* ---- little-endian cursor ---- */

typedef struct {
    uint8_t *p;
} wr_t;
typedef struct {
    const uint8_t *p;
} rd_t;

static void w8(wr_t *w, uint8_t v) { *w->p++ = v; }
static void w16(wr_t *w, uint16_t v) {
    w8(w, (uint8_t)(v & 0xFFu));
    w8(w, (uint8_t)(v >> 8));
}
static void w32(wr_t *w, uint32_t v) {
    w16(w, (uint16_t)(v & 0xFFFFu));
    w16(w, (uint16_t)(v >> 16));
}
static void w64(wr_t *w, uint64_t v) {
    w32(w, (uint32_t)(v & 0xFFFFFFFFu));
    w32(w, (uint32_t)(v >> 32));
}
static void wi16s(wr_t *w, const int16_t *v, unsigned n) {
    unsigned i;
    for (i = 0; i < n; i++) {
        w16(w, (uint16_t)v[i]);
    }
}

static uint8_t r8(rd_t *r) { return *r->p++; }
static uint16_t r16(rd_t *r) {
    uint16_t lo = r8(r);
    return (uint16_t)(lo | ((uint16_t)r8(r) << 8));
}
static uint32_t r32(rd_t *r) {
    uint32_t lo = r16(r);
    return lo | ((uint32_t)r16(r) << 16);
}
static uint64_t r64(rd_t *r) {
    uint64_t lo = r32(r);
    return lo | ((uint64_t)r32(r) << 32);
}
static void ri16s(rd_t *r, int16_t *v, unsigned n) {
    unsigned i;
    for (i = 0; i < n; i++) {
        uint16_t u = r16(r);
        /* two's complement without implementation-defined conversion */
        v[i] = (u & 0x8000u) ? (int16_t)(-(int32_t)(0x10000u - u)) : (int16_t)u;
    }
}

/* ---- layouts ---- */

size_t fb_msg_payload_len(uint8_t msg_type) {
    switch (msg_type) {
    case FB_MSG_HELLO: return 2u;
    case FB_MSG_HELLO_ACK: return 18u;
    case FB_MSG_SET_TARGETS: return 8u + 2u * FB_N_ACTUATORS;                       /* 48 */
    case FB_MSG_STATE_REQUEST: return 8u;
    case FB_MSG_STATE: return 28u + 2u * (2u * FB_N_JOINTS + 2u * FB_N_ACTUATORS); /* 204 */
    case FB_MSG_TRIGGER: return 8u;
    case FB_MSG_TRIGGER_ACK: return 16u;
    case FB_MSG_HEARTBEAT: return 16u;
    case FB_MSG_FAULT: return 10u;
    case FB_MSG_ESTOP: return 2u;
    case FB_MSG_RESET: return 4u;
    case FB_MSG_RESET_ACK: return 8u;
    case FB_MSG_ERROR: return 9u;
    default: return 0u;
    }
}

int fb_msg_decode(const fb_frame_t *frame, fb_msg_t *out) {
    size_t need = fb_msg_payload_len(frame->msg_type);
    int handshake = frame->msg_type == FB_MSG_HELLO || frame->msg_type == FB_MSG_HELLO_ACK;
    rd_t r;
    if (need == 0u) {
        return FB_E_UNKNOWN_TYPE;
    }
    if (!handshake && frame->version != FB_PROTOCOL_VERSION) {
        return FB_E_VERSION_UNSUPPORTED;
    }
    if (handshake ? frame->length < need : frame->length != need) {
        return FB_E_BAD_LENGTH;
    }
    r.p = frame->payload;
    out->type = frame->msg_type;
    switch (frame->msg_type) {
    case FB_MSG_HELLO:
        out->u.hello.min_version = r8(&r);
        out->u.hello.max_version = r8(&r);
        break;
    case FB_MSG_HELLO_ACK: {
        fb_hello_ack_t *m = &out->u.hello_ack;
        m->version = r8(&r);
        m->board_kind = r8(&r);
        m->min_version = r8(&r);
        m->max_version = r8(&r);
        m->fw_major = r8(&r);
        m->fw_minor = r8(&r);
        m->fw_patch = r16(&r);
        m->watchdog_ms = r16(&r);
        m->servo_hz = r16(&r);
        m->actuator_count = r8(&r);
        m->joint_count = r8(&r);
        m->serial_number = r32(&r);
        break;
    }
    case FB_MSG_SET_TARGETS:
        out->u.set_targets.target_seq = r64(&r);
        ri16s(&r, out->u.set_targets.targets, FB_N_ACTUATORS);
        break;
    case FB_MSG_STATE_REQUEST:
        out->u.state_request.cycle = r64(&r);
        break;
    case FB_MSG_STATE: {
        fb_state_t *m = &out->u.state;
        m->cycle = r64(&r);
        m->fw_time_us = r64(&r);
        m->applied_seq = r64(&r);
        m->fault_flags = r32(&r);
        ri16s(&r, m->positions, FB_N_JOINTS);
        ri16s(&r, m->velocities, FB_N_JOINTS);
        ri16s(&r, m->efforts, FB_N_ACTUATORS);
        ri16s(&r, m->temperatures, FB_N_ACTUATORS);
        break;
    }
    case FB_MSG_TRIGGER:
        out->u.trigger.cycle = r64(&r);
        break;
    case FB_MSG_TRIGGER_ACK:
        out->u.trigger_ack.cycle = r64(&r);
        out->u.trigger_ack.hw_time_us = r64(&r);
        break;
    case FB_MSG_HEARTBEAT:
        out->u.heartbeat.time_us = r64(&r);
        out->u.heartbeat.echo_us = r64(&r);
        break;
    case FB_MSG_FAULT:
        out->u.fault.code = r16(&r);
        out->u.fault.flags = r32(&r);
        out->u.fault.detail = r32(&r);
        break;
    case FB_MSG_ESTOP:
        out->u.estop.reason = r16(&r);
        break;
    case FB_MSG_RESET:
        out->u.reset.token = r32(&r);
        break;
    case FB_MSG_RESET_ACK:
        out->u.reset_ack.token = r32(&r);
        out->u.reset_ack.fault_flags = r32(&r);
        break;
    case FB_MSG_ERROR:
        out->u.error.code = r16(&r);
        out->u.error.ref_type = r8(&r);
        out->u.error.ref_seq = r16(&r);
        out->u.error.detail = r32(&r);
        break;
    default:
        return FB_E_UNKNOWN_TYPE;
    }
    return FB_OK;
}

size_t fb_msg_encode(const fb_msg_t *msg, uint8_t *out, size_t cap) {
    size_t len = fb_msg_payload_len(msg->type);
    wr_t w;
    if (len == 0u || cap < len) {
        return 0u;
    }
    w.p = out;
    switch (msg->type) {
    case FB_MSG_HELLO:
        w8(&w, msg->u.hello.min_version);
        w8(&w, msg->u.hello.max_version);
        break;
    case FB_MSG_HELLO_ACK: {
        const fb_hello_ack_t *m = &msg->u.hello_ack;
        w8(&w, m->version);
        w8(&w, m->board_kind);
        w8(&w, m->min_version);
        w8(&w, m->max_version);
        w8(&w, m->fw_major);
        w8(&w, m->fw_minor);
        w16(&w, m->fw_patch);
        w16(&w, m->watchdog_ms);
        w16(&w, m->servo_hz);
        w8(&w, m->actuator_count);
        w8(&w, m->joint_count);
        w32(&w, m->serial_number);
        break;
    }
    case FB_MSG_SET_TARGETS:
        w64(&w, msg->u.set_targets.target_seq);
        wi16s(&w, msg->u.set_targets.targets, FB_N_ACTUATORS);
        break;
    case FB_MSG_STATE_REQUEST:
        w64(&w, msg->u.state_request.cycle);
        break;
    case FB_MSG_STATE: {
        const fb_state_t *m = &msg->u.state;
        w64(&w, m->cycle);
        w64(&w, m->fw_time_us);
        w64(&w, m->applied_seq);
        w32(&w, m->fault_flags);
        wi16s(&w, m->positions, FB_N_JOINTS);
        wi16s(&w, m->velocities, FB_N_JOINTS);
        wi16s(&w, m->efforts, FB_N_ACTUATORS);
        wi16s(&w, m->temperatures, FB_N_ACTUATORS);
        break;
    }
    case FB_MSG_TRIGGER:
        w64(&w, msg->u.trigger.cycle);
        break;
    case FB_MSG_TRIGGER_ACK:
        w64(&w, msg->u.trigger_ack.cycle);
        w64(&w, msg->u.trigger_ack.hw_time_us);
        break;
    case FB_MSG_HEARTBEAT:
        w64(&w, msg->u.heartbeat.time_us);
        w64(&w, msg->u.heartbeat.echo_us);
        break;
    case FB_MSG_FAULT:
        w16(&w, msg->u.fault.code);
        w32(&w, msg->u.fault.flags);
        w32(&w, msg->u.fault.detail);
        break;
    case FB_MSG_ESTOP:
        w16(&w, msg->u.estop.reason);
        break;
    case FB_MSG_RESET:
        w32(&w, msg->u.reset.token);
        break;
    case FB_MSG_RESET_ACK:
        w32(&w, msg->u.reset_ack.token);
        w32(&w, msg->u.reset_ack.fault_flags);
        break;
    case FB_MSG_ERROR:
        w16(&w, msg->u.error.code);
        w8(&w, msg->u.error.ref_type);
        w16(&w, msg->u.error.ref_seq);
        w32(&w, msg->u.error.detail);
        break;
    default:
        return 0u;
    }
    return (size_t)(w.p - out) == len ? len : 0u;
}

size_t fb_encode_message(const fb_msg_t *msg, uint16_t seq, uint8_t *out, size_t cap) {
    uint8_t payload[FB_MAX_MSG_PAYLOAD];
    size_t len = fb_msg_encode(msg, payload, sizeof payload);
    if (len == 0u) {
        return 0u;
    }
    return fb_encode_frame(out, cap, FB_PROTOCOL_VERSION, msg->type, seq, payload, len);
}

uint8_t fb_negotiate_version(uint8_t a_min, uint8_t a_max, uint8_t b_min, uint8_t b_max) {
    uint8_t hi = a_max < b_max ? a_max : b_max;
    uint8_t lo = a_min > b_min ? a_min : b_min;
    return hi >= lo && hi > 0u ? hi : 0u;
}
