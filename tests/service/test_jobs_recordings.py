"""Episode recordings: the worker uploads the MCAP bytes (PUT .../episodes/{index}/recording,
stored content-addressed), names its sha256 in the episode report, and the job's submitter
(or staff) downloads it; others get 404, a report naming a recording never uploaded 404."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.service.jobs_harness import (
    attempt_url,
    claim,
    episode,
    jobs_env,
    report_in,
    robot_headers,
    submit,
)

MCAP = b"\x89MCAP0\r\n" + b"records" * 100


def test_upload_report_and_download_a_recording(database_url: str, tmp_path: Path) -> None:
    env, client = jobs_env(database_url, tmp_path, max_recording_bytes=4096)
    h1 = robot_headers(env, "arm-1")
    with client:
        report_in(env, "arm-1")
        report_in(env, "arm-2")
        job = submit(env, "alice@lab", episodes=2)
        claim(env, "arm-1")
        url = attempt_url(job, 1) + "/episodes/0/recording"
        # only the attempt's robot uploads
        r = client.put(url, content=MCAP, headers=robot_headers(env, "arm-2"))
        assert r.status_code == 403
        r = client.put(url, content=MCAP, headers=env.h("alice@lab"))
        assert r.status_code == 403
        r = client.put(url, content=b"z" * 5000, headers=h1)
        assert r.status_code == 413 and r.json()["error"] == "bundle_too_large"
        r = client.put(url, content=MCAP, headers=h1)
        assert r.status_code == 201, r.text
        sha = hashlib.sha256(MCAP).hexdigest()
        assert r.json() == {"sha256": sha, "size": len(MCAP), "created": True}
        # a report naming a recording that was never uploaded
        r = client.post(
            attempt_url(job, 1) + "/episodes",
            json=episode(1, recording_sha256="a" * 64),
            headers=h1,
        )
        assert r.status_code == 404 and r.json()["error"] == "recording_not_found"
        report = episode(
            0,
            recording_sha256=sha,
            cycles=250,
            seconds=20.0,
            timing={"reset_s": 1.5, "run_s": 20.1},
            session_id="s-1",
        )
        r = client.post(attempt_url(job, 1) + "/episodes", json=report, headers=h1)
        assert r.status_code == 200, r.text
        [result] = r.json()["results"]
        assert result["recording_sha256"] == sha and result["cycles"] == 250
        assert result["detail"]["timing"] == {"reset_s": 1.5, "run_s": 20.1}
        # out of range and malformed reports
        r = client.post(attempt_url(job, 1) + "/episodes", json=episode(2), headers=h1)
        assert r.status_code == 422 and r.json()["error"] == "episode_out_of_range"
        r = client.post(
            attempt_url(job, 1) + "/episodes",
            content=b'{"index": 1, "successes": 1, "end_reason": "x", "seconds": NaN}',
            headers={**h1, "Content-Type": "application/json"},
        )
        assert r.status_code == 422
        r = client.post(attempt_url(job, 1) + "/episodes", json=episode(1, extra=1), headers=h1)
        assert r.status_code == 422
        # the submitter and staff download it; bob and the robot do not
        down = f"/jobs/{job['id']}/episodes/0/recording"
        assert client.get(down, headers=env.h("alice@lab")).content == MCAP
        assert client.get(down, headers=env.h("staff@lab")).content == MCAP
        assert client.get(down, headers=env.h("bob@lab")).status_code == 404
        assert client.get(down, headers=h1).status_code == 403
        missing = client.get(f"/jobs/{job['id']}/episodes/1/recording", headers=env.h("alice@lab"))
        assert missing.status_code == 404 and missing.json()["error"] == "recording_not_found"
