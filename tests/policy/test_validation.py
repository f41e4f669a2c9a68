"""A bundle whose shapes disagree with its manifest or with the cell is refused, field named."""

from __future__ import annotations

import json
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from policy_bundles import copy_bundle, dense_model, write_manifest
from raas_drivers.hand.config import ACTUATOR_NAMES

from raas.policy import CellSpec, load_bundle
from raas.policy.errors import BundleArchiveError, CellMismatchError, ModelMismatchError

PERIOD = 0.08


def _edit(bundle: Path, dst: Path, **over: Any) -> Path:
    copy_bundle(bundle, dst)
    m = json.loads((dst / "manifest.json").read_text())
    for k, v in over.items():
        section, _, name = k.partition("__")
        if name:
            m[section][name] = v
        else:
            m[section] = v
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def test_observation_size_mismatch_names_the_fields(dense_bundle: Path, tmp_path: Path) -> None:
    b = _edit(
        dense_bundle,
        tmp_path / "b",
        observation__fields=[{"key": "object_position", "shape": [3]}],
    )
    with pytest.raises(ModelMismatchError) as info:
        load_bundle(b, period_s=PERIOD)
    assert info.value.field == "observation.fields"
    assert "3 values" in str(info.value) and "[1, 22]" in str(info.value)


def test_action_size_mismatch_names_actuators_or_bins(dense_bundle: Path, tmp_path: Path) -> None:
    b = _edit(dense_bundle, tmp_path / "a", action__actuators=["A_WRJ1", "A_WRJ0"])
    with pytest.raises(ModelMismatchError) as info:
        load_bundle(b, period_s=PERIOD)
    assert info.value.field == "action.actuators"
    b = _edit(dense_bundle, tmp_path / "b", action__kind="discrete", action__bins=11)
    with pytest.raises(ModelMismatchError) as info:
        load_bundle(b, period_s=PERIOD)
    assert info.value.field == "action.bins"
    assert "220" in str(info.value)


def test_discrete_output_with_a_wrong_actuator_count_names_the_actuators(
    tmp_path: Path,
) -> None:
    """A 20 x 11 logits model declared with 19 actuators: the actuator list is at fault, not
    `action.bins`, and both counts are in the message."""
    d = tmp_path / "discrete"
    d.mkdir()
    dense_model(d / "model.onnx", 22, 220)
    write_manifest(
        d,
        action={
            "output": "action",
            "actuators": list(ACTUATOR_NAMES[:19]),
            "kind": "discrete",
            "bins": 11,
        },
    )
    with pytest.raises(ModelMismatchError) as info:
        load_bundle(d, period_s=PERIOD)
    assert info.value.field == "action.actuators"
    assert "19 actuators listed x 11 bins = 209 values" in str(info.value)
    assert "20 actuators x 11 bins" in str(info.value)
    # the same model declared with 20 actuators and 10 bins: now the bins are at fault
    write_manifest(
        d,
        action={
            "output": "action",
            "actuators": list(ACTUATOR_NAMES),
            "kind": "discrete",
            "bins": 10,
        },
    )
    with pytest.raises(ModelMismatchError) as info:
        load_bundle(d, period_s=PERIOD)
    assert info.value.field == "action.bins"
    assert "20 actuators x 11 values each" in str(info.value)


def test_wrong_input_and_output_names_are_named(dense_bundle: Path, tmp_path: Path) -> None:
    b = _edit(dense_bundle, tmp_path / "a", action__output="logits")
    with pytest.raises(ModelMismatchError) as info:
        load_bundle(b, period_s=PERIOD)
    assert info.value.field == "action.output"
    b = _edit(dense_bundle, tmp_path / "b", state=[{"input": "h", "output": "h_out"}])
    with pytest.raises(ModelMismatchError) as info:
        load_bundle(b, period_s=PERIOD)
    assert info.value.field == "state.0.input"


def test_state_shape_mismatch_is_named(small_bundle: Path, tmp_path: Path) -> None:
    b = _edit(
        small_bundle,
        tmp_path / "s",
        state=[
            {"input": "h", "output": "h_out", "shape": [1, 1, 64]},
            {"input": "c", "output": "c_out"},
        ],
    )
    with pytest.raises(ModelMismatchError) as info:
        load_bundle(b, period_s=PERIOD)
    assert info.value.field == "state.0.shape"


def test_cell_mismatches_are_named(dense_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(CellMismatchError) as info:
        load_bundle(dense_bundle, period_s=0.01)
    assert info.value.field == "control_period_s"
    names = json.loads((dense_bundle / "manifest.json").read_text())["action"]["actuators"]
    b = _edit(dense_bundle, tmp_path / "a", action__actuators=[*names[:-1], "A_THJ9"])
    with pytest.raises(CellMismatchError) as info:
        load_bundle(b, period_s=PERIOD)
    assert info.value.field == "action.actuators"
    assert "A_THJ9" in str(info.value)


def test_vision_model_checked_against_cameras(tmp_path: Path) -> None:
    from raas.policy import examples

    b = examples.make_vision(tmp_path / "v", 64, 48)
    with pytest.raises(CellMismatchError) as info:
        load_bundle(b, period_s=PERIOD)  # the default cell's cameras are 200x200
    assert info.value.field == "vision.image_width"
    cell = CellSpec(camera_width=64, camera_height=48)
    runner = load_bundle(b, period_s=PERIOD, cell=cell)
    assert runner.needs >= {"cameras.left", "cameras.right", "cameras.top"}
    with pytest.raises(CellMismatchError) as info:
        load_bundle(
            b, period_s=PERIOD, cell=CellSpec(cameras=("left",), camera_width=64, camera_height=48)
        )
    assert info.value.field == "vision.cameras"


def test_undeclared_model_input_is_named(tmp_path: Path) -> None:
    d = tmp_path / "x"
    d.mkdir()
    dense_model(d / "model.onnx", 22, 20)
    write_manifest(
        d,
        observation={
            "input": "observation",
            "fields": [
                {"key": "fingertip_positions", "shape": [5, 3]},
                {"key": "object_position", "shape": [3]},
                {"key": "relative_goal_orientation", "shape": [4]},
            ],
        },
    )
    with pytest.raises(ModelMismatchError) as info:
        load_bundle(d, period_s=PERIOD)
    assert info.value.field == "observation.input"
    assert "(it has obs)" in str(info.value)


def test_zip_and_tar_bundles_load_with_the_same_hash(small_bundle: Path, tmp_path: Path) -> None:
    direct = load_bundle(small_bundle, period_s=PERIOD)
    z = tmp_path / "b.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in small_bundle.iterdir():
            zf.write(p, f"small/{p.name}")
    t = Path(shutil.make_archive(str(tmp_path / "b"), "gztar", small_bundle))
    for archive in (z, t):
        r = load_bundle(archive, period_s=PERIOD)
        assert r.bundle_hash == direct.bundle_hash
        assert r.manifest == direct.manifest


def test_archive_with_unsafe_path_is_refused(small_bundle: Path, tmp_path: Path) -> None:
    t = tmp_path / "evil.tar"
    with tarfile.open(t, "w") as tf:
        tf.add(small_bundle / "manifest.json", arcname="../manifest.json")
    with pytest.raises(BundleArchiveError):
        load_bundle(t, period_s=PERIOD)


def test_symlinks_out_of_the_bundle_are_refused_inside_accepted(
    dense_bundle: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(dense_bundle / "model.onnx", outside / "model.onnx")
    b = tmp_path / "linked"
    b.mkdir()
    shutil.copy(dense_bundle / "manifest.json", b / "manifest.json")
    (b / "model.onnx").symlink_to(outside / "model.onnx")
    with pytest.raises(BundleArchiveError) as info:
        load_bundle(b, period_s=PERIOD)
    assert info.value.field == "bundle"
    assert "model.onnx is a symbolic link to" in str(info.value)
    assert "outside the bundle" in str(info.value)
    # a link to a file inside the bundle is fine: it loads, with the same hash as a copy
    (b / "model.onnx").unlink()
    (b / "v1").mkdir()
    shutil.copy(dense_bundle / "model.onnx", b / "v1" / "model.onnx")
    (b / "model.onnx").symlink_to("v1/model.onnx")
    assert load_bundle(b, period_s=PERIOD).manifest.name == "dense"


def test_float16_is_refused_naming_the_types_accepted(tmp_path: Path) -> None:
    """float16 is a float, but the runner binds float32 or float64 buffers: the refusal says
    so (before: "'obs' must be float, not <class 'numpy.float16'>")."""
    b = tmp_path / "half"
    b.mkdir()
    dense_model(b / "model.onnx", 22, 20, dtype="float16")
    write_manifest(b)
    with pytest.raises(ModelMismatchError) as exc:
        load_bundle(b, period_s=PERIOD)
    assert exc.value.field == "observation.input"
    assert "'obs' is float16; it must be float32 or float64" in str(exc.value)


def test_float64_loads(tmp_path: Path) -> None:
    b = tmp_path / "double"
    b.mkdir()
    dense_model(b / "model.onnx", 22, 20, dtype="float64")
    write_manifest(b)
    assert load_bundle(b, period_s=PERIOD).obs_input.dtype == "float64"
