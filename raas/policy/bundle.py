"""Opening a bundle: a directory, or a .zip / .tar(.gz) of one, holding model.onnx (plus any
external-data files the exporter wrote), a manifest and optionally a vision model."""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from raas.policy.errors import BundleArchiveError, BundleNotFoundError
from raas.policy.manifest import MANIFEST_NAMES, BundleManifest, read_manifest


@dataclass(frozen=True, slots=True)
class OpenedBundle:
    root: Path  # directory holding the manifest (a temporary one for archives)
    manifest: BundleManifest
    sha256: str  # over every file's relative path and bytes, sorted by path

    def file(self, name: str, field: str) -> Path:
        p = (self.root / name).resolve()
        if self.root.resolve() not in p.parents or not p.is_file():
            raise BundleNotFoundError(field, f"{name!r} is not a file in the bundle")
        return p


def bundle_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        rel = p.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _links_stay_inside(root: Path) -> None:
    """A symbolic link in a directory bundle must point at a file inside the bundle: a link out
    would make the hash and what onnxruntime reads (external weights too) depend on files the
    bundle does not hold. Links inside (e.g. model.onnx -> v3/model.onnx) are accepted."""
    top = root.resolve()
    for p in sorted(root.rglob("*")):
        if not p.is_symlink():
            continue
        rel = p.relative_to(root).as_posix()
        try:
            target = p.resolve(strict=True)
        except (OSError, RuntimeError):
            raise BundleArchiveError("bundle", f"{rel} is a broken symbolic link") from None
        if target != top and top not in target.parents:
            raise BundleArchiveError(
                "bundle",
                f"{rel} is a symbolic link to {target}, outside the bundle; copy the file into "
                "the bundle instead",
            )


def _safe_member(name: str) -> bool:
    pp = PurePosixPath(name)
    return not pp.is_absolute() and ".." not in pp.parts


def _extract(path: Path, into: Path) -> None:
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for n in z.namelist():
                    if not _safe_member(n):
                        raise BundleArchiveError("bundle", f"unsafe path {n!r} in {path.name}")
                z.extractall(into)
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as t:
                members = t.getmembers()
                for m in members:
                    if not _safe_member(m.name) or not (m.isfile() or m.isdir()):
                        raise BundleArchiveError(
                            "bundle", f"unsafe or special member {m.name!r} in {path.name}"
                        )
                t.extractall(into, members=members, filter="data")
        else:
            raise BundleArchiveError(
                "bundle", f"{path.name} is neither a directory nor a .zip/.tar archive"
            )
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
        raise BundleArchiveError("bundle", f"cannot read {path.name}: {exc}") from None


def _manifest_root(base: Path) -> Path:
    """The directory holding the manifest: the base itself or its only subdirectory."""
    if any((base / n).is_file() for n in MANIFEST_NAMES):
        return base
    subdirs = [p for p in base.iterdir() if p.is_dir()]
    if len(subdirs) == 1 and any((subdirs[0] / n).is_file() for n in MANIFEST_NAMES):
        return subdirs[0]
    raise BundleNotFoundError("manifest", f"no {' or '.join(MANIFEST_NAMES)} in the bundle")


@contextmanager
def open_bundle(path: Path) -> Iterator[OpenedBundle]:
    """Yield the opened bundle; archives are unpacked into a temporary directory that is
    removed afterwards (onnxruntime has read the models by then)."""
    path = Path(path)
    if not path.exists():
        raise BundleNotFoundError("bundle", f"no such file or directory: {path}")
    with tempfile.TemporaryDirectory(prefix="raas-bundle-") as tmp:
        if path.is_dir():
            root = _manifest_root(path)
            _links_stay_inside(root)
        else:
            _extract(path, Path(tmp))
            root = _manifest_root(Path(tmp))
        found = [root / n for n in MANIFEST_NAMES if (root / n).is_file()]
        if len(found) > 1:
            raise BundleNotFoundError("manifest", "both manifest.toml and manifest.json: keep one")
        manifest = read_manifest(found[0])
        yield OpenedBundle(root=root, manifest=manifest, sha256=bundle_hash(root))
