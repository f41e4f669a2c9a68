"""The manifest: validated field by field, errors name the field, the schema is current."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from policy_bundles import write_manifest

from raas.policy.errors import BundleNotFoundError, ManifestError
from raas.policy.manifest import SCHEMA_PATH, manifest_schema, read_manifest


def _err(tmp_path: Path, **over: object) -> ManifestError:
    write_manifest(tmp_path, **over)
    with pytest.raises(ManifestError) as info:
        read_manifest(tmp_path / "manifest.json")
    return info.value


def test_published_schema_is_current_and_accepts_the_examples(small_bundle: Path) -> None:
    assert json.loads(SCHEMA_PATH.read_text()) == manifest_schema()
    docs = Path(__file__).resolve().parents[2] / "docs" / "policy-manifest.schema.json"
    assert json.loads(docs.read_text()) == manifest_schema()
    jsonschema.validate(json.loads((small_bundle / "manifest.json").read_text()), manifest_schema())


def test_unknown_observation_key_is_named(tmp_path: Path) -> None:
    e = _err(tmp_path, observation={"fields": [{"key": "fingertips", "shape": [15]}]})
    assert e.field == "observation.fields.0.key"
    assert "fingertip_positions" in str(e)  # the known keys are listed


def test_wrong_key_shape_is_named(tmp_path: Path) -> None:
    e = _err(tmp_path, observation={"fields": [{"key": "object_position", "shape": [4]}]})
    assert e.field == "observation.fields.0"
    assert "[3]" in str(e)


def test_discrete_without_bins_and_typos_are_refused(tmp_path: Path) -> None:
    e = _err(tmp_path, action={"actuators": ["A_WRJ1"], "kind": "discrete"})
    assert e.field == "action.bins"
    assert "required when kind is 'discrete'" in str(e)
    e = _err(tmp_path, control_periods=0.08)
    assert e.field == "control_periods"


def test_mean_length_must_match(tmp_path: Path) -> None:
    e = _err(
        tmp_path,
        observation={"fields": [{"key": "object_position", "shape": [3], "mean": [1.0, 2.0]}]},
    )
    assert "mean has 2 values" in str(e)


def test_toml_manifest_reads(tmp_path: Path) -> None:
    (tmp_path / "manifest.toml").write_text(
        'name = "t"\ncontrol_period_s = 0.08\n'
        '[observation]\nfields = [{key = "object_position", shape = [3]}]\n'
        '[action]\nactuators = ["A_WRJ1"]\n'
    )
    m = read_manifest(tmp_path / "manifest.toml")
    assert m.observation.size == 3
    assert m.object_pose_source == "mocap"
    (tmp_path / "manifest.toml").write_text(
        'name = "t"\ncontrol_period_s = 0.08\n'
        '[observation]\nfields = [{key = "joint_positions", shape = [24]}]\n'
        '[action]\nactuators = ["A_WRJ1"]\n'
    )
    assert read_manifest(tmp_path / "manifest.toml").object_pose_source == "none"


def test_missing_bundle_is_named(tmp_path: Path) -> None:
    from raas.policy import load_bundle

    with pytest.raises(BundleNotFoundError) as info:
        load_bundle(tmp_path / "nope", period_s=0.08)
    assert info.value.field == "bundle"
    with pytest.raises(BundleNotFoundError) as info:
        load_bundle(tmp_path, period_s=0.08)
    assert info.value.field == "manifest"


def test_duplicated_actuator_is_named(tmp_path: Path) -> None:
    names = ["A_WRJ1", "A_WRJ0", "A_FFJ3", "A_WRJ0"]
    e = _err(tmp_path, action={"actuators": names})
    assert e.field == "action.actuators"
    assert "'A_WRJ0' is listed twice (positions 1 and 3)" in str(e)


def test_duplicated_state_input_is_named(tmp_path: Path) -> None:
    e = _err(tmp_path, state=[{"input": "h", "output": "h1"}, {"input": "h", "output": "h2"}])
    assert e.field == "state"
    assert "'h' is used twice" in str(e)
