"""`raas jobs ...` against the real reservation service (uvicorn on a free port, SQLite).

The robot's side of a job is driven over HTTP with the robot's token (claim, episode recordings
and results, finish): the requests a job worker sends, so the CLI meets jobs that really run,
succeed, fail and are cancelled. Asserted: the bundle goes up once (HEAD, then PUT only when
the service lacks it), every refusal of the contract is one clear line and exit code 5,
`--wait` follows queued -> claimed -> episodes -> end and exits 0 only for a success, and
`fetch` downloads exactly the bytes the robot uploaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from raas.service.models import Role
from raas.service.settings import Settings
from tests.service.harness import REPO, Seeded, seed, settings_for
from tests.service.robot_side import Claim, RobotSide, ThreadedService

pytestmark = [pytest.mark.system, pytest.mark.slow]

USERS = {"staff@lab": Role.staff, "alice@lab": Role.researcher, "bob@lab": Role.researcher}
ROBOTS = ("shadow-1", "shadow-2")
#: Small, so the too-large refusal needs only a few MiB of test data.
MAX_BUNDLE = 6 << 20


@dataclass
class Lab:
    service: ThreadedService
    seeded: Seeded
    tmp: Path
    settings: Settings

    @property
    def url(self) -> str:
        return self.service.base_url

    def env(self, who: str = "alice@lab") -> dict[str, str]:
        out = {k: v for k, v in os.environ.items() if not k.startswith("RAAS_")}
        out.update(
            RAAS_SERVICE_URL=self.url,
            RAAS_TOKEN=self.seeded.token(who),
            RAAS_CONFIG=os.devnull,
        )
        return out

    def robot(self, name: str = "shadow-1") -> RobotSide:
        side = RobotSide(self.url, self.seeded.robots[name], self.seeded.robot_tokens[name], name)
        side.heartbeat()
        return side

    def job(self, job_id: int, who: str = "staff@lab") -> dict[str, object]:
        r = httpx.get(f"{self.url}/jobs/{job_id}", headers=self.seeded.headers(who), timeout=10)
        assert r.status_code == 200, r.text
        body: dict[str, object] = r.json()
        return body


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    base = settings_for(f"sqlite:///{tmp_path / 'raas.db'}", tmp_path)
    settings = base.model_copy(update={"max_bundle_bytes": MAX_BUNDLE})
    seeded = seed(settings, users=USERS, robots=ROBOTS, unlimited=True)
    lab = Lab(ThreadedService(settings).start(), seeded, tmp_path, settings)
    try:
        for name in ROBOTS:  # both register a shadow-dexterous hand (a daemon's heartbeat)
            lab.robot(name).close()
        yield lab
    finally:
        lab.service.stop()  # the one running now (a test may have restarted it)


def raas(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raas_client.cli", "jobs", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
        check=False,
    )


def spawn(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "raas_client.cli", "jobs", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )


def make_bundle(root: Path, name: str = "my-policy", payload: bytes = b"onnx bytes") -> Path:
    """A bundle directory (the service stores bytes; the robot would validate the bundle)."""
    bundle = root / name
    bundle.mkdir(parents=True)
    (bundle / "model.onnx").write_bytes(payload)
    (bundle / "manifest.toml").write_text('name = "my-policy"\n')
    return bundle


def job_id_of(stdout: str) -> int:
    for line in stdout.splitlines():
        if line.startswith("job "):
            return int(line.split()[1])
    raise AssertionError(f"no job id in: {stdout}")


def test_submit_uploads_the_bundle_once(lab: Lab) -> None:
    from raas_client import bundles

    bundle = make_bundle(lab.tmp)
    r = raas("submit", str(bundle), "--episodes", "3", "--hand", "shadow-dexterous", env=lab.env())
    assert r.returncode == 0, r.stdout + r.stderr
    sha = bundles.sha256(bundles.pack(bundle))
    assert f"bundle my-policy: sha256 {sha[:16]}, uploaded" in r.stdout
    first = job_id_of(r.stdout.split("\n", 1)[1])
    assert f"job {first} queued: 3 episode(s) of reorientation on any shadow-dexterous robot" in (
        r.stdout
    )
    # the service holds exactly the packed bytes, under their sha256
    got = httpx.get(f"{lab.url}/bundles/{sha}", headers=lab.seeded.headers("alice@lab"), timeout=10)
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == sha
    # the same bundle again (bob this time): not sent again
    r = raas(
        "submit",
        str(bundle),
        "--episodes",
        "1",
        "--robot",
        "shadow-2",
        "--deadline",
        "2999-06-01T12:00+02:00",
        env=lab.env("bob@lab"),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"bundle my-policy: sha256 {sha[:16]}, already on the service" in r.stdout
    assert "on robot shadow-2" in r.stdout
    job = lab.job(first)
    assert job["bundle_sha256"] == sha and job["hand_model"] == "shadow-dexterous"
    assert job["status"] == "queued" and job["episodes"] == 3
    bobs = lab.job(first + 1)
    assert bobs["robot"] == "shadow-2" and bobs["user"] == "bob@lab"
    assert str(bobs["deadline"]).startswith("2999-06-01T10:00")  # the zone kept, stored in UTC


def test_a_big_bundle_shows_its_upload_progress(lab: Lab) -> None:
    bundle = make_bundle(lab.tmp, payload=os.urandom(5 << 20))
    r = raas("submit", str(bundle), "--episodes", "1", env=lab.env())
    assert r.returncode == 0, r.stdout + r.stderr
    # not a terminal: a few plain lines on stderr instead of a redrawn bar
    assert "upload my-policy: 25% of 5.0 MiB" in r.stderr
    assert "upload my-policy: 75% of 5.0 MiB" in r.stderr
    assert "uploaded 5.0 MiB" in r.stdout


def test_refusals_say_what_is_wrong(lab: Lab) -> None:
    bundle = make_bundle(lab.tmp)
    env = lab.env()

    def refused(*args: str, who: str = "alice@lab") -> str:
        r = raas("submit", str(bundle), *args, env=lab.env(who))
        assert r.returncode == 5, r.stdout + r.stderr
        return r.stderr

    assert "(unknown_robot)" in refused("--episodes", "1", "--robot", "shadow-9")
    assert "shadow-9" in refused("--episodes", "1", "--robot", "shadow-9")
    out = refused("--episodes", "1", "--hand", "allegro")
    assert "(no_qualifying_robot)" in out and "allegro" in out
    out = refused("--episodes", "5000")
    assert "(invalid_request)" in out and "episodes" in out and "5000" in out
    out = refused("--episodes", "1", "--priority", "9")
    assert "refused (" in out and "priorit" in out.lower()
    # staff may use a high priority
    r = raas("submit", str(bundle), "--episodes", "1", "--priority", "9", env=lab.env("staff@lab"))
    assert r.returncode == 0, r.stdout + r.stderr

    out = refused("--episodes", "1", "--deadline", "2020-01-01T10:00Z")
    assert "(invalid_time_range)" in out

    # refused here, before anything is sent
    r = raas("submit", str(lab.tmp / "nope"), "--episodes", "1", env=env)
    assert r.returncode == 2 and "no such bundle" in r.stderr
    r = raas("submit", str(bundle), "--episodes", "1", "--deadline", "friday", env=env)
    assert r.returncode == 2 and "--deadline 'friday' is not an ISO 8601 time" in r.stderr
    r = raas("submit", str(bundle), "--episodes", "1", "--robot", "a", "--hand", "b", env=env)
    assert r.returncode == 2 and "not allowed with argument" in r.stderr

    # over the service's size limit
    big = make_bundle(lab.tmp, "huge", payload=os.urandom(MAX_BUNDLE + 1024))
    r = raas("submit", str(big), "--episodes", "1", env=env)
    assert r.returncode == 5, r.stdout + r.stderr
    assert "(bundle_too_large)" in r.stderr

    # a job that is not there, or not yours
    r = raas("show", "99999", env=env)
    assert r.returncode == 5 and "no job 99999" in r.stderr
    r = raas("submit", str(bundle), "--episodes", "1", env=lab.env("bob@lab"))
    bobs = job_id_of(r.stdout.split("\n", 1)[1])
    r = raas("cancel", str(bobs), env=env)
    assert r.returncode == 5, r.stdout + r.stderr

    # an unreachable service is named
    dead = {**env, "RAAS_SERVICE_URL": "http://127.0.0.1:9"}
    r = raas("list", env=dead)
    assert r.returncode == 1 and "http://127.0.0.1:9 is unreachable" in r.stderr
    # no service configured at all
    none = {k: v for k, v in env.items() if k not in ("RAAS_SERVICE_URL",)}
    r = raas("list", env=none)
    assert r.returncode == 1 and "which reservation service?" in r.stderr


def test_list_show_cancel(lab: Lab) -> None:
    bundle = make_bundle(lab.tmp)
    ids = {}
    for who in ("alice@lab", "bob@lab"):
        r = raas("submit", str(bundle), "--episodes", "2", "--seed", "7", env=lab.env(who))
        assert r.returncode == 0, r.stdout + r.stderr
        ids[who] = job_id_of(r.stdout.split("\n", 1)[1])

    r = raas("list", env=lab.env())
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == [
        "ID",
        "STATUS",
        "DONE",
        "ROBOT",
        "USER",
        "PRIO",
        "CREATED",
        "MESSAGE",
    ]
    assert [line.split()[0] for line in lines[1:]] == [str(ids["alice@lab"])]  # only her own
    assert lines[1].split()[1:4] == ["queued", "0/2", "any"]
    r = raas("list", "--all", "--json", env=lab.env("staff@lab"))
    everyone = {j["id"] for j in json.loads(r.stdout)}
    assert set(ids.values()) <= everyone

    r = raas("show", str(ids["alice@lab"]), env=lab.env())
    assert r.returncode == 0, r.stderr
    assert f"job {ids['alice@lab']}: queued" in r.stdout
    assert "2 episode(s) of reorientation on any robot" in r.stdout
    assert "seed 7" in r.stdout and "episodes done 0/2" in r.stdout

    r = raas("cancel", str(ids["alice@lab"]), env=lab.env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"job {ids['alice@lab']} cancelled: 0/2 episodes done" in r.stdout
    assert lab.job(ids["alice@lab"])["status"] == "cancelled"
    r = raas("list", "--status", "cancelled", env=lab.env())
    assert [line.split()[0] for line in r.stdout.splitlines()[1:]] == [str(ids["alice@lab"])]
    # a finished job cannot be cancelled again
    r = raas("cancel", str(ids["alice@lab"]), env=lab.env())
    assert r.returncode == 5, r.stdout + r.stderr


def drive(
    robot: RobotSide, successes: list[int], outcome: str = "succeeded", msg: str = ""
) -> tuple[Claim, list[bytes]]:
    """Claim the next job and run it: one result per entry of `successes`, then finish."""
    claim = robot.claim()
    recordings = []
    for index, n in enumerate(successes):
        robot.job_heartbeat(claim)
        recordings.append(robot.episode(claim, index, n))
    robot.finish(claim, outcome, msg)
    return claim, recordings


def test_wait_follows_the_job_and_fetch_gets_the_recordings(lab: Lab) -> None:
    bundle = make_bundle(lab.tmp)
    robot = lab.robot("shadow-1")
    proc = spawn(
        "submit", str(bundle), "--episodes", "2", "--robot", "shadow-1", "--wait", env=lab.env()
    )
    try:
        claim, recordings = drive(robot, [3, 5])
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        robot.close()
    assert proc.returncode == 0, out + err
    job_id = claim.job_id
    assert f"job {job_id} queued" in out
    assert "claimed by shadow-1" in out
    assert "episode 1/2: 3 successes, ended by a goal timeout" in out
    assert "episode 2/2: 5 successes, ended by a goal timeout" in out
    assert f"job {job_id} succeeded (2/2 episodes); successes per episode [3, 5]" in out
    # the lines come in the job's order
    assert out.index("claimed by") < out.index("episode 1/2") < out.index("episode 2/2")

    r = raas("show", str(job_id), env=lab.env())
    assert "episode 1: 3 successes, ended by a goal timeout" in r.stdout
    assert f"job {job_id}: succeeded" in r.stdout
    r = raas("logs", str(job_id), env=lab.env())
    assert r.returncode == 0 and "claimed by shadow-1" in r.stdout

    dest = lab.tmp / "recordings"
    r = raas("fetch", str(job_id), "--dest", str(dest), env=lab.env())
    assert r.returncode == 0, r.stdout + r.stderr
    got = sorted(dest.iterdir())
    assert [p.name for p in got] == [f"job{job_id}-ep000.mcap", f"job{job_id}-ep001.mcap"]
    assert [p.read_bytes() for p in got] == recordings
    assert not list(dest.glob("*.part"))
    # someone else's recordings are not theirs to fetch
    r = raas("fetch", str(job_id), "--dest", str(lab.tmp / "bob"), env=lab.env("bob@lab"))
    assert r.returncode == 5 and not list((lab.tmp / "bob").glob("*.mcap"))


def test_wait_exits_1_when_the_job_fails(lab: Lab) -> None:
    bundle = make_bundle(lab.tmp)
    robot = lab.robot("shadow-2")
    proc = spawn(
        "submit", str(bundle), "--episodes", "2", "--robot", "shadow-2", "--wait", env=lab.env()
    )
    try:
        claim = robot.claim()
        robot.episode(claim, 0, 1, upload=False)  # a robot whose recorder is off
        robot.finish(claim, "failed", "the policy's outputs went non-finite")
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        robot.close()
    assert proc.returncode == 1, out + err
    assert "episode 1/2: 1 successes" in out
    assert f"job {claim.job_id} failed" in out
    assert "non-finite" in out
    r = raas("fetch", str(claim.job_id), "--dest", str(lab.tmp / "none"), env=lab.env())
    assert r.returncode == 1, r.stdout + r.stderr
    assert "episode 1: no recording (its robot uploaded none)" in r.stdout
    assert not list((lab.tmp / "none").iterdir())


def test_cancel_a_running_job_tells_the_robot(lab: Lab) -> None:
    bundle = make_bundle(lab.tmp)
    robot = lab.robot("shadow-1")
    try:
        r = raas("submit", str(bundle), "--episodes", "4", "--robot", "shadow-1", env=lab.env())
        job_id = job_id_of(r.stdout.split("\n", 1)[1])
        follower = spawn("logs", str(job_id), "--follow", env=lab.env())
        claim = robot.claim()
        assert claim.job_id == job_id
        robot.episode(claim, 0, 2)
        r = raas("cancel", str(job_id), env=lab.env())
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"job {job_id} cancelled: 1/4 episodes done" in r.stdout
        assert "running on shadow-1: the robot stops, the hand holds" in r.stdout
        beat = robot.http.post(f"/jobs/{job_id}/attempts/{claim.attempt}/heartbeat")
        assert beat.status_code == 409 or beat.json().get("cancel") is True, beat.text
        out, err = follower.communicate(timeout=60)
        assert follower.returncode == 1, out + err  # --follow ends with the job; not a success
        assert "episode 1/4: 2 successes" in out and f"job {job_id} cancelled" in out
    finally:
        robot.close()


def test_the_client_never_imports_raas(tmp_path: Path) -> None:
    """The researcher installs the client alone: the jobs commands must not need `raas`."""
    code = (
        "import sys, raas_client.cli, raas_client.jobs, raas_client.commands.jobs;"
        "bad = [m for m in sys.modules if m == 'raas' or m.startswith('raas.')];"
        "assert not bad, bad"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "clients" / "python")}
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert r.returncode == 0, r.stderr


def test_the_python_client_names_each_refusal(lab: Lab) -> None:
    from raas_client import bundles
    from raas_client.directory import Service
    from raas_client.errors import (
        BundleHashMismatchError,
        BundleNotFoundError,
        JobNotFoundError,
        NoQualifyingRobotError,
        UnknownRobotError,
    )
    from raas_client.jobs import JobRequest, JobsClient

    bundle = make_bundle(lab.tmp)
    with JobsClient(Service(lab.url, lab.seeded.token("alice@lab"))) as jobs:
        sha, sent = jobs.upload_bundle(bundle)
        assert (sha, sent) == (bundles.sha256(bundles.pack(bundle)), True)
        assert jobs.upload_bundle(bundle) == (sha, False)
        with pytest.raises(BundleHashMismatchError):
            jobs.put_bundle(b"other bytes", "0" * 64)
        assert not jobs.has_bundle("0" * 64)  # nothing half-stored
        with pytest.raises(BundleNotFoundError):
            jobs.submit(JobRequest(bundle_sha256="1" * 64, episodes=1))
        with pytest.raises(UnknownRobotError, match="shadow-9"):
            jobs.submit(JobRequest(bundle_sha256=sha, episodes=1, robot="shadow-9"))
        with pytest.raises(NoQualifyingRobotError, match="allegro"):
            jobs.submit(JobRequest(bundle_sha256=sha, episodes=1, hand_model="allegro"))
        job = jobs.submit(JobRequest(bundle_sha256=sha, episodes=2, seed=3))
        assert (job.status, job.episodes, job.seed, job.user) == ("queued", 2, 3, "alice@lab")
        assert [j.id for j in jobs.list_jobs()] == [job.id]
        assert [e.kind for e in jobs.logs(job.id)] == ["submitted"]
        assert jobs.cancel(job.id).status == "cancelled"
        with pytest.raises(JobNotFoundError):
            jobs.get(job.id + 1000)


def test_following_outlives_a_service_restart_and_ctrl_c_leaves_the_job(lab: Lab) -> None:
    bundle = make_bundle(lab.tmp)
    r = raas("submit", str(bundle), "--episodes", "1", "--robot", "shadow-1", env=lab.env())
    job_id = job_id_of(r.stdout.split("\n", 1)[1])

    # Ctrl-C stops following only
    follower = spawn("logs", str(job_id), "--follow", env=lab.env())
    assert wait_for_line(follower, "queued")
    follower.send_signal(signal.SIGINT)
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 130, out + err
    assert f"stopped following job {job_id}; it goes on (raas jobs cancel {job_id} stops it)" in err
    assert lab.job(job_id)["status"] == "queued"

    # the service goes away for a few seconds and comes back on the same address
    follower = spawn("logs", str(job_id), "--follow", env=lab.env())
    assert wait_for_line(follower, "queued")
    lab.service.stop()
    time.sleep(4)
    lab.service = ThreadedService(lab.settings, port=lab.service.port).start()
    robot = lab.robot("shadow-1")
    try:
        drive(robot, [2])
    finally:
        robot.close()
    out, err = follower.communicate(timeout=120)
    assert follower.returncode == 0, out + err
    assert "is unreachable" in err and "asking again" in err
    assert "the service answers again" in err
    assert "episode 1/1: 2 successes" in out and f"job {job_id} succeeded" in out


def wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float = 60) -> bool:
    """Read the process's stdout until a line holds `text` (the rest stays in the pipe)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            return False
        if text in line:
            return True
    return False


def test_wait_shows_a_requeue_and_the_robot_that_finishes(lab: Lab) -> None:
    """A robot stops mid-job (a booking ahead, an e-stop): the job goes back to the queue with
    its finished episode kept and another robot finishes it; --wait says so and exits 0."""
    bundle = make_bundle(lab.tmp)
    first, second = lab.robot("shadow-1"), lab.robot("shadow-2")
    proc = spawn("submit", str(bundle), "--episodes", "2", "--wait", env=lab.env())
    try:
        claim = first.claim()
        first.episode(claim, 0, 4)
        first.finish(claim, "interrupted", "a booking starts")
        again = second.claim()
        assert (again.job_id, again.attempt) == (claim.job_id, 2)
        second.episode(again, 1, 6)
        second.finish(again, "succeeded")
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        first.close()
        second.close()
    assert proc.returncode == 0, out + err
    order = [
        "claimed by shadow-1 (attempt 1)",
        "episode 1/2: 4 successes",
        "interrupted: a booking starts",
        "requeued: back in the queue with 1 of 2 episodes done",
        "claimed by shadow-2 (attempt 2)",
        "episode 2/2: 6 successes",
        f"job {claim.job_id} succeeded (2/2 episodes); successes per episode [4, 6]",
    ]
    at = [out.find(line) for line in order]
    assert -1 not in at and at == sorted(at), out
    r = raas("list", env=lab.env())
    assert r.stdout.splitlines()[1].split()[3] == "shadow-1,shadow-2"  # who ran it


def test_submit_names_a_policy_server(lab: Lab) -> None:
    """`--policy-server ... --policy-key ...` instead of a bundle: nothing is uploaded, the job
    names the server, `show` prints it; both or neither (or a key without a server) are refused
    here with one line and exit 2; a key the service refuses names the field (exit 5)."""
    import zmq
    from raas_client.directory import Service
    from raas_client.errors import ServiceRefusedError
    from raas_client.jobs import JobRequest, JobsClient, PolicyServer

    key = zmq.curve_keypair()[0].decode("ascii")
    server = ["--policy-server", "tcp://gpu.lab.example:7000", "--policy-key", key]
    r = raas("submit", *server, "--horizon", "8", "--episodes", "2", env=lab.env())
    assert r.returncode == 0, r.stdout + r.stderr
    jid = job_id_of(r.stdout)
    assert "bundle" not in r.stdout  # nothing to upload
    got = lab.job(jid)
    assert got["bundle_sha256"] is None
    assert got["policy_server"] == {
        "endpoint": "tcp://gpu.lab.example:7000",
        "server_key": key,
        "horizon": 8,
        "blend": "newest",
    }
    shown = raas("show", str(jid), env=lab.env())
    assert shown.returncode == 0, shown.stderr
    assert f"policy server tcp://gpu.lab.example:7000 (key {key}, chunks of 8, newest)" in (
        shown.stdout
    )
    bundle = make_bundle(lab.tmp)
    for args, says in [
        ((str(bundle), *server), "not both"),
        ((), "give BUNDLE"),
        (("--policy-server", "tcp://gpu.lab.example:7000"), "needs --policy-key"),
        ((str(bundle), "--policy-key", key), "goes with --policy-server"),
    ]:
        r = raas("submit", *args, "--episodes", "1", env=lab.env())
        assert r.returncode == 2 and says in r.stderr, (args, r.stderr)
    r = raas(
        "submit", server[0], server[1], "--policy-key", "x" * 39, "--episodes", "1", env=lab.env()
    )
    assert r.returncode == 5 and "policy_server.server_key" in r.stderr, r.stderr
    # the Python client: the same request, and the job's policy server read back
    with JobsClient(Service(lab.url, lab.seeded.token("alice@lab"))) as jobs:
        job = jobs.submit(
            JobRequest(episodes=1, policy_server=PolicyServer("tcp://10.0.0.7:7000", key))
        )
        assert job.policy_server == PolicyServer("tcp://10.0.0.7:7000", key, 16, "newest")
        assert job.bundle_sha256 == ""
        with pytest.raises(ServiceRefusedError, match="exactly one"):
            jobs.submit(JobRequest(episodes=1))
