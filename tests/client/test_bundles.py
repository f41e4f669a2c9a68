"""`raas_client.bundles.pack`: the bytes a bundle is sent and stored as. A directory packs to
the same bytes every time (its sha256 is its id in the service's bundle store), whatever the
files' times and owners; a file is its own bytes."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from raas_client import bundles


def _bundle(root: Path) -> Path:
    d = root / "policy"
    (d / "sub").mkdir(parents=True)
    (d / "policy.onnx").write_bytes(b"\x08\x01onnx")
    (d / "manifest.json").write_text('{"name": "p"}')
    (d / "sub" / "note.txt").write_text("x")
    return d


def test_a_directory_packs_to_one_tar_whatever_its_times(tmp_path: Path) -> None:
    d = _bundle(tmp_path)
    first = bundles.pack(d)
    for path in d.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
    assert bundles.pack(d) == first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        names = tar.getnames()
        assert names == [
            "policy",
            "policy/manifest.json",
            "policy/policy.onnx",
            "policy/sub",
            "policy/sub/note.txt",
        ]
        assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in tar.getmembers())
    assert bundles.upload_name(d) == "policy.tar"
    (d / "policy.onnx").write_bytes(b"changed")
    assert bundles.sha256(bundles.pack(d)) != bundles.sha256(first)


def test_a_file_is_its_own_bytes(tmp_path: Path) -> None:
    f = tmp_path / "policy.onnx"
    f.write_bytes(b"\x00\x01\x02")
    assert bundles.pack(f) == b"\x00\x01\x02"
    assert bundles.upload_name(f) == "policy.onnx"
    assert bundles.sha256(b"") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
