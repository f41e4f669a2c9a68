"""The exporter: a small HTTP server in its own process that maps the board and serves it.

    GET /                  the live dashboard (clients/web/dashboard/)
    GET /metrics           Prometheus text format
    GET /status.json       the dashboard's view of the board
    GET /events            the same, pushed twice a second (Server-Sent Events)
    GET /cameras/NAME.png  the latest thumbnail of one camera
    GET /health            "ok"

Run as `python -m raas.metrics.exporter --board PATH --port N` (the daemon starts it when
metrics are enabled). It drops any real-time scheduling it inherited, keeps off the loop's
CPUs, and exits when its parent (the daemon) is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from raas.metrics.board import Board, Snapshot
from raas.metrics.collector import BoardCollector
from raas.metrics.errors import MetricsError
from raas.metrics.status import RateMeter, status

DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "clients" / "web" / "dashboard"
DASHBOARD_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
EVENT_INTERVAL_S = 0.5


class BoardView:
    """Snapshots of one board for every request thread, plus the measured cycle rate."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self.rate = RateMeter()
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(BoardCollector(self.snapshot))

    def snapshot(self) -> tuple[Snapshot, int]:
        snap = self.board.snapshot()
        return snap, time.monotonic_ns()

    def status(self) -> dict[str, Any]:
        snap, now = self.snapshot()
        return status(snap, now, self.rate.rate(now, snap.int("cycles")))


def png(image: Any) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image, "RGB").save(out, "PNG", compress_level=1)
    return out.getvalue()


def make_handler(view: BoardView, web_dir: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "raas-metrics"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: a scrape every few seconds is not news

        def _send(self, code: int, body: bytes, ctype: str, cache: str = "no-store") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", cache)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            try:
                if path in DASHBOARD_FILES:
                    name, ctype = DASHBOARD_FILES[path]
                    self._send(200, (web_dir / name).read_bytes(), ctype)
                elif path == "/metrics":
                    self._send(200, generate_latest(view.registry), CONTENT_TYPE_LATEST)
                elif path == "/status.json":
                    body = json.dumps(view.status()).encode()
                    self._send(200, body, "application/json")
                elif path == "/events":
                    self._events()
                elif path.startswith("/cameras/") and path.endswith(".png"):
                    self._camera(unquote(path[len("/cameras/") : -len(".png")]))
                elif path == "/health":
                    self._send(200, b"ok\n", "text/plain")
                else:
                    self._send(404, b"not found\n", "text/plain")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away

        def _camera(self, name: str) -> None:
            snap, _ = view.snapshot()
            if name not in snap.layout.cameras:
                self._send(404, f"no camera {name!r}\n".encode(), "text/plain")
                return
            image = snap.thumbnail(name)
            if image is None:
                self._send(404, f"no frame from {name!r} yet\n".encode(), "text/plain")
                return
            self._send(200, png(image), "image/png")

        def _events(self) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(b"retry: 1000\n\n")
            while True:
                data = json.dumps(view.status())
                self.wfile.write(f"data: {data}\n\n".encode())
                self.wfile.flush()
                time.sleep(EVENT_INTERVAL_S)

    return Handler


def _leave_realtime(cpus: list[int] | None) -> None:
    """Forked from a loop that may hold SCHED_FIFO and a pinned CPU: give both back."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    if cpus:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)
    with contextlib.suppress(OSError):
        os.nice(5)


def _exit_with_parent(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def serve(board: Board, host: str, port: int, web_dir: Path = DASHBOARD_DIR) -> ThreadingHTTPServer:
    """A bound (not yet serving) server for `board`; call serve_forever() on it."""
    server = ThreadingHTTPServer((host, port), make_handler(BoardView(board), web_dir))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="raas.metrics.exporter", description=__doc__.split("\n")[0])
    p.add_argument("--board", type=Path, required=True, help="the metrics board file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9180, help="0: any free port")
    p.add_argument("--cpus", default="", help="comma-separated CPUs to run on")
    p.add_argument("--parent", type=int, default=0, help="exit when this process is gone")
    p.add_argument("--web-dir", type=Path, default=DASHBOARD_DIR)
    args = p.parse_args(argv)
    _leave_realtime([int(c) for c in args.cpus.split(",") if c])
    if args.parent:
        _exit_with_parent(args.parent)
    try:
        board = Board.open(args.board)
        server = serve(board, args.host, args.port, args.web_dir)
    except (MetricsError, OSError) as exc:
        sys.stderr.write(f"raas-metrics: {exc}\n")
        return 1
    host, port = server.server_address[:2]
    sys.stdout.write(f"raas-metrics: serving http://{host!s}:{port}/ from {args.board}\n")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
