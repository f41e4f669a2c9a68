"""Conformance: a second, minimal client written from docs/protocol.md alone, against a real
`raasd robot --sim`, so that the document and the daemon cannot drift apart.

This file must not import `raas_client` (nor `raas_client.wire`): it speaks the protocol with
pyzmq, msgpack and numpy only, and takes the message types, reply fields, event kinds, error
codes, modes and stream fields from the tables of docs/protocol.md. Where it compares the
document with the code (the full sets of message types, error codes and event kinds), it reads
the source as text (ast), never by importing it.
"""

from __future__ import annotations

import ast
import hashlib
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq

from tests.transport.harness import ROOT, LeaseIssuer, RobotDaemon, start_daemon

pytestmark = [pytest.mark.system, pytest.mark.slow]

DOC = ROOT / "docs" / "protocol.md"
FRAME_CAP = 8 * 1024 * 1024  # the conformance daemon's max_frame_bytes (the default is 64 MiB)
VERSION = 2


# ------------------------------------------------------------------ the document's tables
def _tables(heading: str) -> list[list[list[str]]]:
    """The tables (rows of cells, header and separator rows left out) under `heading`, up to
    the next heading of the same or a higher level."""
    lines = DOC.read_text().splitlines()
    start = level = None
    for i, line in enumerate(lines):
        m = re.match(r"^(#+)\s+(.*)$", line)
        if m and m.group(2).strip() == heading:
            start, level = i + 1, len(m.group(1))
            break
    assert start is not None and level is not None, f"docs/protocol.md has no '{heading}'"
    tables: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in lines[start:]:
        m = re.match(r"^(#+)\s", line)
        if m and len(m.group(1)) <= level:
            break
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if current is None:
                current = []
                tables.append(current)
                continue  # the header row
            if all(re.fullmatch(r":?-+:?", c) for c in cells):
                continue
            current.append(cells)
        else:
            current = None
    assert tables, f"no table under '{heading}'"
    return tables


def _ticks(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _first(cell: str) -> str:
    names = _ticks(cell)
    assert names, f"a table row without a `name`: {cell!r}"
    return names[0]


@dataclass(frozen=True)
class Doc:
    requests: dict[str, set[str]]  # type -> reply fields
    events: dict[str, set[str]]  # kind -> fields
    codes: set[str]
    modes: set[str]
    obs_fields: set[str]
    report_fields: set[str]
    stream_fields: set[str]
    blocks: dict[str, str]  # block layout -> the message that carries it


def _field_names(cell: str) -> set[str]:
    """Field names of a table cell: the leading `name` of each comma-separated item (values in
    parentheses are not fields)."""
    depth, item, items = 0, "", []
    for ch in cell:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            items.append(item)
            item = ""
        else:
            item += ch
    items.append(item)
    out = set()
    for it in items:
        m = re.match(r"\s*(?:array\s+)?`([a-z_0-9]+)`", it)
        if m:
            out.add(m.group(1))
    return out


def load_doc() -> Doc:
    requests = {}
    for row in _tables("Requests")[0]:
        requests[_first(row[0])] = _field_names(row[3])
    events = {row and _first(row[0]): _field_names(row[1]) for row in _tables("Events")[0]}
    codes = {_first(row[0]) for row in _tables("Error codes")[0]}
    modes = {_first(row[0]) for row in _tables("Modes")[0]}
    robot = _tables("Messages from the robot")
    obs_fields = {_first(row[0]) for row in robot[1]}
    report_fields = {_first(row[0]) for row in robot[2]}
    stream_fields = {_first(row[0]) for row in _tables("The stream")[0]}
    blocks = {_first(row[0]): _first(row[1]) for row in _tables("Blocks")[0]}
    return Doc(requests, events, codes, modes, obs_fields, report_fields, stream_fields, blocks)


# ------------------------------------------------------------------ the code, read as text
def _string_constants(path: Path, cls: str) -> set[str]:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            return {
                st.value.value
                for st in node.body
                if isinstance(st, ast.Assign)
                and isinstance(st.value, ast.Constant)
                and isinstance(st.value.value, str)
            }
    raise AssertionError(f"no class {cls} in {path}")


WIRE = ROOT / "clients" / "python" / "raas_client" / "wire.py"
REPLIES = {"ok", "error", "obs", "event"}  # robot -> client types


def _event_kinds_in_code() -> set[str]:
    """Every event kind the daemon's code can emit: `_event("k", ...)`, `run_event("k", ...)`,
    `{"kind": "k", ...}`, and the evaluation's `{"event": "k", ...}` (sent as run events)."""
    kinds: set[str] = set()
    files = [*(ROOT / "raas" / "transport").glob("*.py"), ROOT / "raas" / "task" / "evaluation.py"]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and node.args:
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                arg = node.args[0]
                if name in ("_event", "run_event") and isinstance(arg, ast.Constant):
                    kinds.add(str(arg.value))
            if isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values, strict=True):
                    if (
                        isinstance(k, ast.Constant)
                        and k.value in ("kind", "event")
                        and isinstance(v, ast.Constant)
                        and isinstance(v.value, str)
                    ):
                        kinds.add(v.value)
    kinds.discard("event")  # serve.py's default for an evaluation event without a name
    return kinds


# ------------------------------------------------------------------ the minimal client
@dataclass
class Msg:
    header: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def t(self) -> str:
        return str(self.header.get("t"))

    def fields(self) -> set[str]:
        return set(self.header) - {"v", "t", "id", "a", "b"} | set(self.arrays)


#: Layouts as hello's `spaces.layouts` announces them: name -> {"bytes", "arrays"}.
Layouts = dict[str, dict[str, Any]]


def pack_block(layout: dict[str, Any], arrays: dict[str, Any]) -> bytes:
    """The block of `layout` holding `arrays` (each at its offset, zero padding). An array of
    another size than the layout's makes a block of the wrong size (to provoke refusals)."""
    block = bytearray(layout["bytes"])
    for name, dtype, shape, offset in layout["arrays"]:
        raw = np.ascontiguousarray(arrays[name], dtype=np.dtype("<" + dtype)).tobytes()
        if len(raw) != int(np.prod(shape)) * np.dtype(dtype).itemsize:
            return b"".join(np.ascontiguousarray(a).tobytes() for a in arrays.values())
        block[offset : offset + len(raw)] = raw
    return bytes(block)


def encode(
    t: str,
    fields: dict[str, Any] | None = None,
    arrays: dict[str, Any] | None = None,
    layouts: Layouts | None = None,
) -> list[bytes]:
    """A request; a `step`'s action goes in the `step` block (the Blocks table), any other
    array as a loose frame listed in `a`."""
    header: dict[str, Any] = {"v": VERSION, "t": t, **(fields or {})}
    frames: list[bytes] = []
    if arrays and layouts is not None and t in layouts:
        header["b"] = t
        frames.append(pack_block(layouts[t], arrays))
    elif arrays:
        header["a"] = []
        for name, arr in arrays.items():
            a = np.ascontiguousarray(arr)
            header["a"].append([name, a.dtype.str[1:], list(a.shape)])
            frames.append(a.tobytes())
    return [msgpack.packb(header), *frames]


def decode(frames: list[bytes], layouts: Layouts | None = None) -> Msg:
    header = msgpack.unpackb(frames[0], raw=False)
    arrays = {}
    rest = frames[1:]
    if "b" in header:
        assert layouts is not None, "a block before hello's layouts are known"
        layout = layouts[header["b"]]
        block = rest[0]
        assert len(block) == layout["bytes"], f"block {header['b']} of {len(block)} bytes"
        for name, dtype, shape, offset in layout["arrays"]:
            dt = np.dtype("<" + dtype)
            count = int(np.prod(shape))
            assert offset % 8 == 0
            arrays[name] = np.frombuffer(block, dt, count, offset).reshape(shape)
        rest = rest[1:]
    for (name, dtype, shape), buf in zip(header.get("a", []), rest, strict=True):
        arrays[name] = np.frombuffer(buf, dtype=np.dtype("<" + dtype)).reshape(shape)
    return Msg(header, arrays)


def hello_layouts(sock: zmq.Socket[bytes]) -> Layouts:
    """A client learns the block layouts from hello before anything else."""
    sock.send_multipart([msgpack.packb({"v": VERSION, "t": "hello", "id": "layouts"})])
    assert sock.poll(10_000), "no hello reply"
    reply = msgpack.unpackb(sock.recv_multipart()[0], raw=False)
    assert reply["t"] == "ok" and reply["id"] == "layouts", reply
    layouts: Layouts = reply["spaces"]["layouts"]
    return layouts


class Client:
    """A DEALER on the control socket, with CurveZMQ as docs/protocol.md describes it."""

    def __init__(self, daemon: RobotDaemon) -> None:
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        public, secret = zmq.curve_keypair()
        self.sock.curve_publickey, self.sock.curve_secretkey = public, secret
        assert daemon.server_key is not None
        self.sock.curve_serverkey = daemon.server_key.encode()
        self.sock.connect(daemon.control)
        self.layouts = hello_layouts(self.sock)
        self.inbox: list[Msg] = []  # obs and events, in arrival order
        self.n = 0

    def send_frames(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def send(self, t: str, fields: dict[str, Any] | None = None, **arrays: Any) -> Any:
        self.n += 1
        rid = f"req-{self.n}"
        self.send_frames(encode(t, {"id": rid, **(fields or {})}, arrays or None, self.layouts))
        return rid

    def recv(self, timeout_s: float) -> Msg | None:
        if not self.sock.poll(int(timeout_s * 1000)):
            return None
        return decode(self.sock.recv_multipart(), self.layouts)

    def reply(self, rid: Any, timeout_s: float = 10.0) -> Msg | None:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            m = self.recv(left)
            if m is None:
                break
            if m.t in ("ok", "error") and m.header.get("id") == rid:
                return m
            if m.t in ("obs", "event"):
                self.inbox.append(m)
        return None

    def ok(self, t: str, fields: dict[str, Any] | None = None, **arrays: Any) -> Msg:
        m = self.reply(self.send(t, fields, **arrays))
        assert m is not None, f"no reply to {t}"
        assert m.t == "ok", f"{t}: {m.header}"
        return m

    def error(self, t: str, fields: dict[str, Any] | None = None, **arrays: Any) -> str:
        rid = self.send(t, fields, **arrays)
        m = self.reply(rid)
        assert m is not None, f"no reply to {t}"
        assert m.t == "error", f"{t} was not refused: {m.header}"
        assert m.header["id"] == rid
        assert set(m.header) >= {"code", "message"}
        return str(m.header["code"])

    def next(
        self, t: str, timeout_s: float = 10.0, kind: str | None = None, **match: Any
    ) -> Msg | None:
        """The next unrequested message of type t (and event kind, and header values), queued
        or arriving."""
        deadline = time.monotonic() + timeout_s
        while True:
            for i, m in enumerate(self.inbox):
                if (
                    m.t == t
                    and (kind is None or m.header.get("kind") == kind)
                    and all(m.header.get(k) == v for k, v in match.items())
                ):
                    del self.inbox[i]
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            m = self.recv(left)
            if m is not None and m.t in ("obs", "event"):
                self.inbox.append(m)

    def close(self) -> None:
        """Close the session (if any: a failed test leaves none behind) and the socket."""
        self.reply(self.send("close"), timeout_s=2.0)
        self.sock.close(0)


class Subscriber:
    """A SUB on the stream. "Who receives the stream": only a Curve public key that an open
    session authorised (`open`'s `stream_key`), so the keypair is made here and `session()`
    opens an observer session for it, kept alive by heartbeats ("any message is a heartbeat")."""

    def __init__(self, daemon: RobotDaemon, endpoint: str, layouts: Layouts) -> None:
        self.daemon = daemon
        self.layouts = layouts
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.linger = 0
        self.sock.rcvhwm = 100_000
        public, secret = zmq.curve_keypair()
        self.public = public.decode("ascii")
        self.sock.curve_publickey, self.sock.curve_secretkey = public, secret
        assert daemon.server_key is not None
        self.sock.curve_serverkey = daemon.server_key.encode()
        self.sock.connect(endpoint)
        self.sock.subscribe(b"")

        self.observer: Client | None = None
        self._beat = threading.Event()
        self._beating: threading.Thread | None = None

    def session(self, lease: str) -> Msg:
        """Open an observer session that authorises this subscriber's key, and keep it alive."""
        self.observer = Client(self.daemon)
        opened = self.observer.ok(
            "open", {"lease": lease, "role": "observe", "stream_key": self.public}
        )
        self._beating = threading.Thread(target=self._heartbeats, args=(self.observer,))
        self._beating.start()
        return opened

    def _heartbeats(self, observer: Client) -> None:
        while not self._beat.wait(0.2):
            observer.send("heartbeat")
            while observer.recv(0) is not None:
                pass

    def end_session(self) -> None:
        self._beat.set()
        if self._beating is not None:
            self._beating.join()
        if self.observer is not None:
            self.observer.close()  # sends close
        self.observer = None

    def wait_connected(self) -> None:
        assert self.sock.poll(10_000), "nothing on the stream"

    def drain(self, max_s: float = 5.0) -> Iterator[tuple[str, Msg]]:
        """What has arrived so far (the stream never stops: at most max_s of reading)."""
        end = time.monotonic() + max_s
        while time.monotonic() < end and self.sock.poll(200):
            frames = self.sock.recv_multipart()
            yield frames[0].decode(), decode(frames[1:], self.layouts)

    def close(self) -> None:
        self.end_session()
        self.sock.close(0)


# ------------------------------------------------------------------ fixtures
def _clear_a_latched_estop(robot: RobotDaemon, issuer: LeaseIssuer) -> None:
    """The module shares one daemon: leave no e-stop latched behind (no-op when none is)."""
    c = Client(robot)
    try:
        c.reply(c.send("open", {"lease": issuer.issue()}))
        c.reply(c.send("clear_estop"))
    finally:
        c.close()


@pytest.fixture(scope="module")
def doc() -> Doc:
    return load_doc()


@pytest.fixture(scope="module")
def robot(tmp_path_factory: pytest.TempPathFactory, issuer: LeaseIssuer) -> Iterator[RobotDaemon]:
    tmp = Path(tmp_path_factory.mktemp("conformance"))
    (tmp / "cell.toml").write_text(f"[transport]\nmax_frame_bytes = {FRAME_CAP}\n")
    d = start_daemon(tmp, issuer, extra=("--config", str(tmp / "cell.toml")))
    yield d
    d.stop()


@pytest.fixture
def client(robot: RobotDaemon) -> Iterator[Client]:
    c = Client(robot)
    yield c
    c.close()


def _subscriber(robot: RobotDaemon) -> Subscriber:
    c = Client(robot)
    hello = c.ok("hello")
    c.close()
    port = str(hello.header["stream_endpoint"]).rsplit(":", 1)[1]
    host = robot.control[len("tcp://") :].rsplit(":", 1)[0]
    return Subscriber(robot, f"tcp://{host}:{port}", c.layouts)


@pytest.fixture
def stream(robot: RobotDaemon, issuer: LeaseIssuer) -> Iterator[Subscriber]:
    """A subscription made for one test (so its backlog is that test's messages only), with
    the observer session that authorises it."""
    s = _subscriber(robot)
    s.session(issuer.issue(scope="observe", sub="conformance-watcher"))
    s.wait_connected()
    yield s
    s.close()


# ------------------------------------------------------------------ stream authorization
def test_the_stream_reaches_open_sessions_only(robot: RobotDaemon, issuer: LeaseIssuer) -> None:
    """Who receives the stream: nothing with the server key alone; steps while an open session
    holds the key; nothing published after that session closed (the doc: at most the close's
    cycle; asserted with a wide margin)."""
    s = _subscriber(robot)
    try:
        assert not s.sock.poll(2000), "a subscriber without a session received the stream"
        s.session(issuer.issue(scope="observe", sub="gated"))
        s.wait_connected()
        s.end_session()
        closed_ns = time.monotonic_ns()
        published = [int(m.header["mono_ns"]) for topic, m in s.drain(max_s=3.0) if topic == "step"]
        assert published, "no steps while the session was open"
        assert max(published) - closed_ns < 1e9, "steps went on after the session closed"
    finally:
        s.close()


# ------------------------------------------------------------------ the document vs the code
def test_the_tables_name_every_type_code_and_event_of_the_code(doc: Doc) -> None:
    assert set(doc.requests) == _string_constants(WIRE, "Msg") - REPLIES
    assert doc.codes == _string_constants(WIRE, "ErrorCode")
    assert set(doc.events) == _event_kinds_in_code()
    assert {"hold", "estop", "step", "policy", "health", "loading"} <= doc.modes


# ------------------------------------------------------------------ hello, status, open
def test_hello_and_status_replies_have_the_documented_fields(client: Client, doc: Doc) -> None:
    hello = client.ok("hello")
    assert hello.fields() == doc.requests["hello"]
    assert hello.header["protocol"] == VERSION
    limits = hello.header["limits"]
    assert limits["frame_bytes"] == FRAME_CAP
    assert limits["header_bytes"] == limits["message_bytes"] == 64 * 1024
    st = client.ok("status")
    assert st.fields() == doc.requests["status"]
    assert st.header["mode"] in doc.modes


def test_every_documented_request_is_known_and_nothing_else(client: Client, doc: Doc) -> None:
    for t in doc.requests:
        if t == "step":
            continue  # no reply when accepted; without a session it is refused below
        rid = client.send(t)
        m = client.reply(rid)
        assert m is not None, t
        assert m.header.get("code") != "unknown_type", f"{t} is documented but unknown"
    # Unknown types answer unknown_type, with or without a session.
    assert client.error("teleport") == "unknown_type"
    assert client.error("step", {"cycle": 1}, action=np.zeros(20)) == "no_session"


# ------------------------------------------------------------------ malformed requests
def test_refused_requests_keep_their_id(client: Client) -> None:
    """A request readable enough to have an `id` gets it back in the error."""
    cases = {
        "version": [msgpack.packb({"v": 1, "t": "hello", "id": "a1"})],
        "frame count": [msgpack.packb({"v": VERSION, "t": "hello", "id": "a2"}), b"extra"],
        "dtype": [
            msgpack.packb({"v": VERSION, "t": "hello", "id": "a3", "a": [["x", "c16", [1]]]}),
            b"x",
        ],
        "array size": [
            msgpack.packb({"v": VERSION, "t": "hello", "id": "a4", "a": [["x", "f8", [3]]]}),
            b"\0" * 7,
        ],
        "no type": [msgpack.packb({"v": VERSION, "id": "a5"})],
        "unknown block": [msgpack.packb({"v": VERSION, "t": "hello", "id": "a6", "b": "x"}), b""],
    }
    expected = {"version": "unsupported_version"}
    for i, (what, frames) in enumerate(cases.items(), start=1):
        client.send_frames(frames)
        m = client.reply(f"a{i}")
        assert m is not None, f"{what}: no reply carrying the request's id"
        assert m.t == "error" and m.header["code"] == expected.get(what, "bad_request"), what
        if what == "version":  # an older client can read its refusal: in its own version
            assert m.header["v"] == 1 and f"speaks protocol {VERSION}" in m.header["message"]
    # Not a map: no id to give back; the error says null.
    client.send_frames([msgpack.packb([1, 2, 3])])
    m = client.recv(10)
    assert m is not None and m.t == "error" and m.header["id"] is None
    assert m.header["code"] == "bad_request"


def test_size_limits(robot: RobotDaemon, client: Client) -> None:
    """Over its type's limit: too_large, with the id. Over the frame cap: the connection is
    dropped by ZeroMQ before the daemon sees a byte; the daemon serves the next client."""
    junk = np.zeros(6_000_000, dtype=np.uint8)  # 6 MB: under the frame cap, over hello's limit
    assert client.error("hello", data=junk) == "too_large"
    assert client.error("step", {"cycle": 0}, action=np.zeros(20_000)) == "too_large"
    just = np.zeros(64 * 1024 - 200, dtype=np.uint8)  # a hello under 64 KiB in all: fine
    client.ok("hello", data=just)
    # A header over its 64 KiB: too_large too; it is not read, so the reply's id is null.
    client.send_frames([msgpack.packb({"v": VERSION, "t": "hello", "id": "h", "x": "y" * 70_000})])
    m = client.recv(10)
    assert m is not None and m.t == "error", m
    assert (m.header["code"], m.header["id"]) == ("too_large", None), m.header
    over = Client(robot)
    try:
        rid = over.send("hello", data=np.zeros(FRAME_CAP + 1024, dtype=np.uint8))
        assert over.reply(rid, timeout_s=2.0) is None
    finally:
        over.close()
    client.ok("status")


# ------------------------------------------------------------------ leases and sessions
def test_the_error_codes_a_client_can_provoke(
    robot: RobotDaemon, issuer: LeaseIssuer, doc: Doc, tmp_path: Path
) -> None:
    """Every code of the table that one client can cause, each from its documented cause;
    the rest are named with the reason they cannot be provoked here."""
    seen: set[str] = set()
    a, b = Client(robot), Client(robot)
    try:

        def err(c: Client, t: str, fields: dict[str, Any] | None = None, **arrays: Any) -> str:
            code = c.error(t, fields, **arrays)
            seen.add(code)
            return code

        other = LeaseIssuer.create(tmp_path)
        now = time.time()
        assert err(a, "hello", {"x": 1}, data=np.zeros(100_000, dtype=np.uint8)) == "too_large"
        a.send_frames([msgpack.packb({"v": 7, "t": "hello", "id": "v"})])
        m = a.reply("v")
        assert m is not None
        seen.add(m.header["code"])
        assert err(a, "nonsense") == "unknown_type"
        assert err(a, "open", {"lease": 12}) == "lease_malformed"
        assert err(a, "open", {"lease": other.issue()}) == "lease_signature_invalid"
        assert err(a, "open", {"lease": issuer.issue(exp=now - 10)}) == "lease_expired"
        assert err(a, "open", {"lease": issuer.issue(nbf=now + 600)}) == "lease_not_yet_valid"
        assert err(a, "open", {"lease": issuer.issue(robot="other-9")}) == "lease_wrong_robot"
        observe = issuer.issue(scope="observe", sub="bob")
        assert err(a, "open", {"lease": observe}) == "lease_wrong_scope"  # role defaults: control
        assert err(a, "heartbeat") == "no_session"
        assert err(a, "open", {"lease": observe, "role": "king"}) == "bad_request"
        a.ok("open", {"lease": observe, "role": "observe"})
        assert err(a, "arm") == "not_controller"
        b.ok("open", {"lease": issuer.issue()})  # role defaults to control
        assert err(a, "open", {"lease": issuer.issue(sub="carol")}) == "controller_busy"
        assert err(b, "fetch", {"session": "nope", "offset": 0, "length": 10}) == "not_found"
        data = np.frombuffer(b"not a bundle", dtype=np.uint8)
        b.ok("upload_begin", {"name": "x.onnx", "size": data.size, "sha256": "0" * 64})
        b.ok("upload_chunk", {"offset": 0}, data=data)
        assert err(b, "upload_end") == "upload_failed"
        b.ok("estop")
        assert err(b, "arm") == "estopped"
        b.ok("clear_estop")
        b.ok("serve", {"horizon": 4})
        chunk = {"session": "not-this-one", "cycle": 0, "recv_ns": 0, "send_ns": 0}
        assert err(b, "chunk", chunk, actions=np.zeros((4, 20))) == "bad_chunk"
        dial = {"endpoint": "ipc:///tmp/policy", "server_key": "k" * 40}
        assert err(b, "serve", {"horizon": 4, "dial": dial}) == "bad_dial"
        b.ok("close")
        a.ok("close")
    finally:
        a.close()
        b.close()
    not_here = {
        "lease_revoked": "needs the reservation service's revocation feed (test_revocation.py)",
        "fault": "needs a latched fault other than an e-stop (a lost device ends the daemon)",
        "busy": "needs the health check or a recording (test_estop.py, tests/client)",
        "unavailable": "needs a daemon without a lease key",
    }
    assert seen | set(not_here) == doc.codes, "a documented code is neither provoked nor excused"


# ------------------------------------------------------------------ remote step and stream
def test_step_observations_reports_and_the_stream(
    robot: RobotDaemon, issuer: LeaseIssuer, doc: Doc, stream: Subscriber
) -> None:
    c = Client(robot)
    try:
        hello = c.ok("hello").header
        opened = c.ok("open", {"lease": issuer.issue(), "role": "control"})
        assert opened.fields() == doc.requests["open"]
        assert c.ok("heartbeat").fields() == doc.requests["heartbeat"]
        armed = c.ok("arm")
        assert armed.fields() == doc.requests["arm"]
        assert armed.header["mode"] == "step"
        obs = c.next("obs")
        assert obs is not None
        assert obs.fields() - set(obs.arrays) == doc.obs_fields - {"report"}
        assert set(obs.arrays) == set(hello["spaces"]["observation"])
        # The Blocks table: every layout hello announces, and the message that carries it.
        assert set(hello["spaces"]["layouts"]) == set(doc.blocks)
        assert doc.blocks == {"obs": "obs", "stream": "step", "step": "step"}
        assert obs.header["b"] == "obs" and "a" not in obs.header
        idle = np.array(hello["spaces"]["action"]["idle"], dtype=np.float64)
        cycle = int(obs.header["cycle"])
        c.send_frames(encode("step", {"cycle": cycle}, {"action": idle}, c.layouts))
        nxt = c.next("obs")
        assert nxt is not None
        rep = nxt.header["report"]
        assert set(rep) == doc.report_fields
        assert rep["cycle"] == cycle and rep["fallback"] == 0
        assert rep["obs_sent_ns"] <= rep["action_ns"] <= rep["applied_ns"]
        # A step block of the wrong size, or an action outside the block: refused, with the id.
        size = c.layouts["step"]["bytes"]
        head = {"v": VERSION, "t": "step", "id": "s-size", "b": "step", "cycle": 0}
        c.send_frames([msgpack.packb(head), b"\0" * (size - 8)])
        m = c.reply("s-size")
        assert m is not None and m.t == "error" and m.header["code"] == "bad_request"
        assert f"{size - 8} bytes" in m.header["message"]
        c.send_frames(encode("step", {"id": "s-loose", "cycle": 0}, {"action": idle}))
        m = c.reply("s-loose")
        assert m is not None and m.t == "error" and m.header["code"] == "bad_request"
        # A step with the wrong cycle is counted late and never applied.
        late0 = c.ok("status").header["actions_late"]
        late = {"cycle": int(nxt.header["cycle"]) + 1000}
        c.send_frames(encode("step", late, {"action": idle}, c.layouts))
        assert c.ok("status").header["actions_late"] == late0 + 1
        c.send_frames(encode("step", {"cycle": nxt.header["cycle"]}, {"action": idle}, c.layouts))
        assert c.next("obs") is not None
        assert c.ok("reset").fields() == doc.requests["reset"]
        assert c.ok("disarm").fields() == doc.requests["disarm"]
        assert c.ok("stop").fields() == doc.requests["stop"]
        c.ok("close")
        closed = c.next("event", kind="session_closed")
        assert closed is not None
    finally:
        c.close()
    steps = events = 0
    for topic, m in stream.drain():
        if topic == "step":
            steps += 1
            assert m.t == "obs"
            assert m.fields() - set(m.arrays) == doc.stream_fields
            assert m.header["b"] == "stream" and "a" not in m.header
            assert set(m.arrays) == set(hello["spaces"]["observation"]) | {"desired", "applied"}
            assert m.header["mode"] in doc.modes
            assert 0 <= m.header["safety"] <= 5
        elif topic == "event":
            events += 1
            kind = m.header["kind"]
            assert kind in doc.events, f"undocumented event kind {kind!r}"
            assert m.fields() - {"kind"} == doc.events[kind], kind
    assert steps > 0 and events > 0


def test_estop_hold_and_rearm(
    robot: RobotDaemon, issuer: LeaseIssuer, doc: Doc, stream: Subscriber
) -> None:
    """What a hold looks like to a stepping client: observations stop, a `safety` event says
    why; clear_estop then arm re-arms."""
    c = Client(robot)
    try:
        c.ok("open", {"lease": issuer.issue()})
        c.ok("arm")
        obs = c.next("obs")
        assert obs is not None
        stopped = c.ok("estop")
        assert stopped.fields() == doc.requests["estop"] and stopped.header["mode"] == "estop"
        est = c.next("event", kind="estop")
        assert est is not None and est.fields() - {"kind"} == doc.events["estop"]
        safety = c.next("event", kind="safety", to="fault")
        assert safety is not None and safety.header["to"] == "fault"
        assert safety.header["reason"] == "estop"
        assert safety.fields() - {"kind"} == doc.events["safety"]
        c.inbox.clear()
        # observations stop (the wait stays inside the harness's 0.5 s liveness timeout: a
        # session silent for 0.5 s is closed, and `arm` would then say no_session)
        c.ok("heartbeat")
        assert c.next("obs", timeout_s=0.3) is None
        assert c.error("arm") == "estopped"
        cleared = c.ok("clear_estop")
        assert cleared.fields() == doc.requests["clear_estop"]
        ev = c.next("event", kind="estop_cleared")
        assert ev is not None and ev.fields() - {"kind"} == doc.events["estop_cleared"]
        c.ok("arm")
        assert c.next("obs") is not None  # stepping again
        c.ok("close")
        # An e-stop by a lease alone, without a session (staff's observe lease).
        c2 = Client(robot)
        try:
            assert c2.ok("estop", {"lease": issuer.issue(scope="observe", sub="staff")})
            c2.ok("open", {"lease": issuer.issue()})
            c2.ok("clear_estop")
            c2.ok("close")
        finally:
            c2.close()
    finally:
        c.close()
        _clear_a_latched_estop(robot, issuer)  # a failure above must not fail the next tests
    for topic, m in stream.drain():
        if topic == "event":
            assert m.header["kind"] in doc.events


def test_run_reply_and_a_bundle_that_fails(
    robot: RobotDaemon, issuer: LeaseIssuer, doc: Doc
) -> None:
    c = Client(robot)
    try:
        c.ok("open", {"lease": issuer.issue()})
        data = np.frombuffer(uuid.uuid4().bytes * 4, dtype=np.uint8)
        sha = hashlib.sha256(data.tobytes()).hexdigest()
        begin = c.ok("upload_begin", {"name": "junk.onnx", "size": data.size, "sha256": sha})
        assert begin.fields() == doc.requests["upload_begin"]
        assert (
            c.ok("upload_chunk", {"offset": 0}, data=data).fields() == doc.requests["upload_chunk"]
        )
        end = c.ok("upload_end")
        assert end.fields() == doc.requests["upload_end"] and end.header["sha256"] == sha
        run = c.ok("run", {"episodes": 1})
        assert run.fields() == doc.requests["run"] and run.header["mode"] == "loading"
        failed = c.next("event", timeout_s=60, kind="run_failed")
        assert failed is not None and failed.fields() - {"kind"} == doc.events["run_failed"]
        c.ok("close")
    finally:
        c.close()
