"""`raasd up`: the whole stack on one machine, what `make run` starts.

It is a small supervisor, never in the control path: it starts the reservation service (with
demo users and robots) and the simulated cell as two child processes, prints the booking page's
address and the demo logins, and keeps the demo robot's status current in the service with a
heartbeat every 2 s while the cell runs (offline when it stops). Ctrl-C stops both cleanly; the
exit code is the cell's.

The cell runs a policy bundle under `raasd eval` (default: the Dactyl-shaped example, generated
into var/bundles/ on first run); `--bundle none` runs the scripted gait with `raasd run` instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

EXIT_SERVICE_FAILED = 4
DEMO_ROBOT = "shadow-1"
DEMO_STAFF = ("staff@demo.lab", "demo-staff")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "up",
        help="start the reservation service and the simulated cell together (make run)",
        description="Start the reservation service (demo data) and run the simulated cell in "
        "real time, with the robot's status reported to the service. Arguments after -- go "
        "to `raasd run --sim`.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--database-url", default=None, help="service database (sqlite:///var/raas.db)")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=9180,
        help="the cell's Prometheus metrics and live dashboard (9180; -1: off)",
    )
    p.add_argument(
        "--bundle",
        default="example:dactyl",
        help="policy bundle the cell runs (raasd eval): a path, example:NAME (dactyl, small, "
        "vision; generated into var/bundles/ when missing) or none (the scripted gait)",
    )
    p.add_argument(
        "cell_args", nargs=argparse.REMAINDER, help="-- then flags for raasd eval (or raasd run)"
    )
    p.set_defaults(func=main)


def _request(
    method: str, url: str, body: dict[str, Any] | None = None, token: str | None = None
) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read() or b"null")


def _wait_healthy(base: str, proc: subprocess.Popen[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with code {proc.returncode}")
        try:
            _request("GET", base + "health")
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"the service did not answer at {base}health within {timeout_s:.0f} s")


def _robot_token(base: str) -> tuple[str, str]:
    """Log in as demo staff, find the demo robot, issue it a daemon token."""
    login = _request(
        "POST", base + "auth/login", {"email": DEMO_STAFF[0], "password": DEMO_STAFF[1]}
    )
    staff = login["access_token"]
    robots = _request("GET", base + "robots", token=staff)
    items = robots["items"] if isinstance(robots, dict) and "items" in robots else robots
    robot = next(r for r in items if r["name"] == DEMO_ROBOT)
    token = _request(
        "POST", base + f"robots/{robot['id']}/tokens", {"name": "raasd up"}, token=staff
    )
    return str(robot["id"]), str(token["token"])


def _heartbeat(base: str, robot_id: str, token: str, status: str) -> None:
    try:
        _request("POST", base + f"robots/{robot_id}/heartbeat", {"status": status}, token=token)
    except (urllib.error.URLError, OSError) as exc:
        print(f"raasd up: heartbeat failed: {exc}", file=sys.stderr)


EXAMPLES_DIR = Path("var/bundles")


def _cell_command(bundle: str, cell_args: list[str]) -> list[str]:
    """What the cell child runs: raasd eval on a bundle (examples generated on first use), or
    raasd run with the scripted gait for --bundle none."""
    if bundle == "none":
        return [sys.executable, "-m", "raas.cli", "run", "--sim", *cell_args]
    path = Path(bundle)
    if bundle.startswith("example:"):
        name = bundle.split(":", 1)[1]
        path = EXAMPLES_DIR / name
        if not (path / "manifest.json").is_file():
            print(
                f"raasd up: generating the example policy bundles into {EXAMPLES_DIR}/ "
                "(first run; torch.onnx.export, random weights) ...",
                flush=True,
            )
            from raas.policy.examples import EXAMPLES, ensure_examples

            if name not in EXAMPLES:
                raise ValueError(f"no example bundle {name!r}; choose from {', '.join(EXAMPLES)}")
            ensure_examples(EXAMPLES_DIR)
    print(
        f"raasd up: the cell runs policy bundle {path} under `raasd eval` (Dactyl's block "
        "reorientation protocol, episodes until Ctrl-C); --bundle none runs the scripted gait",
        flush=True,
    )
    return [
        *(sys.executable, "-m", "raas.cli", "eval", str(path), "--sim", "--status"),
        *("--episodes", "1000000", *cell_args),
    ]


def main(args: argparse.Namespace) -> int:
    base = f"http://{args.host}:{args.port}/"
    serve = [sys.executable, "-m", "raas.cli", "serve", "--demo", "--host", args.host]
    serve += ["--port", str(args.port), "--log-level", "warning"]
    if args.database_url:
        serve += ["--database-url", args.database_url]
    else:
        Path("var").mkdir(exist_ok=True)
    service = subprocess.Popen(serve, stdout=subprocess.PIPE, text=True, bufsize=1)
    cell: subprocess.Popen[str] | None = None
    try:
        try:
            _wait_healthy(base, service, 60)
            robot_id, robot_token = _robot_token(base)
        except (RuntimeError, urllib.error.URLError, OSError, StopIteration, KeyError) as exc:
            print(f"raasd up: the reservation service did not come up: {exc}", file=sys.stderr)
            return EXIT_SERVICE_FAILED
        assert service.stdout is not None
        while True:  # echo the service's banner (address, demo logins)
            line = service.stdout.readline()
            if not line:
                break
            print(line.rstrip(), flush=True)
            if "reservation service on" in line:
                break
        cell_args = [a for a in args.cell_args if a != "--"]
        if args.metrics_port >= 0 and "--metrics-port" not in cell_args:
            cell_args += ["--metrics-port", str(args.metrics_port)]
            print(f"raasd up: live dashboard on http://127.0.0.1:{args.metrics_port}/", flush=True)
        try:
            cell_cmd = _cell_command(args.bundle, cell_args)
        except ValueError as exc:
            print(f"raasd up: {exc}", file=sys.stderr)
            return 2
        cell = subprocess.Popen(cell_cmd, text=True)
        print(
            f"raasd up: cell running as robot {DEMO_ROBOT!r}; Ctrl-C stops everything", flush=True
        )
        while cell.poll() is None:
            _heartbeat(base, robot_id, robot_token, "available")
            with contextlib.suppress(subprocess.TimeoutExpired):
                cell.wait(timeout=2.0)
        _heartbeat(base, robot_id, robot_token, "offline")
        return cell.returncode
    except KeyboardInterrupt:
        # The terminal sent SIGINT to the whole group: the cell stops itself and prints its
        # summary; wait for it.
        if cell is not None:
            try:
                return cell.wait(timeout=30)
            except subprocess.TimeoutExpired:
                cell.kill()
                return cell.wait()
        return 0
    finally:
        if cell is not None and cell.poll() is None:
            cell.send_signal(signal.SIGINT)
            cell.wait(timeout=30)
        if service.poll() is None:
            service.terminate()
            try:
                service.wait(timeout=10)
            except subprocess.TimeoutExpired:
                service.kill()
