"""The bundle store: PUT /bundles/{sha256} stores the bytes once (201, then 200), refuses a
body whose hash differs (422 bundle_hash_mismatch) or that is too large (413
bundle_too_large) leaving nothing behind; HEAD says whether it is there; GET serves it to
staff, to a user who submitted a job with it, and to the robot running such a job."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.service.jobs_harness import BUNDLE, claim, jobs_env, report_in, robot_headers, submit


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_store_once_head_and_refusals(database_url: str, tmp_path: Path) -> None:
    env, client = jobs_env(database_url, tmp_path, max_bundle_bytes=2048)
    sha = hashlib.sha256(BUNDLE).hexdigest()
    h = {**env.h("alice@lab"), "Content-Type": "application/octet-stream"}
    with client:
        assert client.head(f"/bundles/{sha}", headers=h).status_code == 404
        r = client.put(f"/bundles/{sha}", content=BUNDLE, headers=h)
        assert r.status_code == 201, r.text
        assert r.json() == {"sha256": sha, "size": len(BUNDLE), "created": True}
        stored = tmp_path / "blobs" / "sha256" / sha[:2] / sha
        assert stored.read_bytes() == BUNDLE
        again = client.put(f"/bundles/{sha}", content=BUNDLE, headers=h)
        assert again.status_code == 200 and again.json()["created"] is False
        head = client.head(f"/bundles/{sha}", headers=h)
        assert head.status_code == 200 and head.headers["content-length"] == str(len(BUNDLE))

        other = b"other bytes"
        wrong = client.put(f"/bundles/{sha[::-1]}", content=other, headers=h)
        assert wrong.status_code == 422 and wrong.json()["error"] == "bundle_hash_mismatch"
        big = b"x" * 4096
        too = client.put(f"/bundles/{hashlib.sha256(big).hexdigest()}", content=big, headers=h)
        assert too.status_code == 413 and too.json()["error"] == "bundle_too_large"

        # streamed without a Content-Length: refused while it arrives
        def chunks() -> object:
            for _ in range(8):
                yield b"y" * 1024

        streamed = client.put(
            f"/bundles/{hashlib.sha256(b'y' * 8192).hexdigest()}", content=chunks(), headers=h
        )
        assert streamed.status_code == 413
        # nothing but the one bundle was kept (no half files, no temp files)
        assert _files(tmp_path / "blobs") == [stored]

        bad = client.put("/bundles/not-a-hash", content=BUNDLE, headers=h)
        assert bad.status_code == 422
        anonymous = client.put(f"/bundles/{sha}", content=BUNDLE)
        assert anonymous.status_code == 401


def test_who_may_download_a_bundle(database_url: str, tmp_path: Path) -> None:
    env, client = jobs_env(database_url, tmp_path)
    with client:
        report_in(env, "arm-1")
        report_in(env, "arm-2")
        job = submit(env, "alice@lab", robot="arm-1")
        sha = job["bundle_sha256"]
        url = f"/bundles/{sha}"
        assert client.get(url, headers=env.h("alice@lab")).content == BUNDLE
        assert client.get(url, headers=env.h("staff@lab")).status_code == 200
        refused = client.get(url, headers=env.h("bob@lab"))
        assert refused.status_code == 404 and refused.json()["error"] == "bundle_not_found"
        # a robot only while it runs a job with this bundle
        assert client.get(url, headers=robot_headers(env, "arm-1")).status_code == 404
        assert claim(env, "arm-1").status_code == 200
        assert client.get(url, headers=robot_headers(env, "arm-1")).content == BUNDLE
        assert client.get(url, headers=robot_headers(env, "arm-2")).status_code == 404
        missing = "0" * 64
        assert client.get(f"/bundles/{missing}", headers=env.h("staff@lab")).status_code == 404
