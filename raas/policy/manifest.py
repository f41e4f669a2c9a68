"""The bundle manifest: what a policy reads, what it outputs, its memory and its timing.

A manifest is `manifest.toml` or `manifest.json` beside `model.onnx`. It is validated with
pydantic (unknown fields refused, so a typo names itself); `manifest_schema()` gives the
published JSON schema (also shipped as raas/policy/manifest.schema.json and in docs/)."""

from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from raas.policy.errors import ManifestError
from raas.policy.keys import KEYS

SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")
MANIFEST_NAMES = ("manifest.toml", "manifest.json")

_STRICT = ConfigDict(extra="forbid", frozen=True)


def _numel(shape: tuple[int, ...] | list[int]) -> int:
    return math.prod(shape) if shape else 1


class ObservationField(BaseModel):
    """One cell observation key, normalised: clip((value - mean) / std, -clip, clip)."""

    model_config = _STRICT

    key: str = Field(description=f"cell observation key: one of {', '.join(KEYS)}")
    shape: list[int] = Field(description="shape of the key, e.g. [5, 3]; must equal the key's")
    units: str | None = Field(default=None, description="if given, must equal the key's units")
    mean: float | list[float] = Field(default=0.0, description="scalar or one per element")
    std: float | list[float] = Field(default=1.0, description="scalar or one per element, > 0")
    clip: float | None = Field(
        default=None, gt=0, description="clip the normalised value to [-clip, clip]"
    )

    @field_validator("key")
    @classmethod
    def _known_key(cls, v: str) -> str:
        if v not in KEYS:
            raise ValueError(f"unknown observation key {v!r}; the cell has {', '.join(KEYS)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ObservationField:
        key = KEYS[self.key]
        if key.hand_sized is not None:  # its length is the hand's: checked at load
            if len(self.shape) != 1 or self.shape[0] < 1:
                raise ValueError(
                    f"shape {self.shape} of {self.key!r}: one dimension, the hand's "
                    f"{key.hand_sized} (e.g. {list(key.shape)} on the Shadow hand)"
                )
        elif tuple(self.shape) != key.shape:
            raise ValueError(
                f"shape {self.shape} of {self.key!r} does not match the cell's {list(key.shape)}"
            )
        if self.units is not None and self.units != key.units:
            raise ValueError(f"units {self.units!r} of {self.key!r}: the cell gives {key.units!r}")
        n = _numel(self.shape)
        for name in ("mean", "std"):
            v = getattr(self, name)
            if isinstance(v, list) and len(v) != n:
                raise ValueError(f"{name} has {len(v)} values; {self.key!r} has {n} elements")
        std = self.std if isinstance(self.std, list) else [self.std]
        if any(not s > 0 for s in std):
            raise ValueError(f"std: must be > 0 (got {min(std)})")
        return self

    @property
    def size(self) -> int:
        return _numel(self.shape)


class ObservationSpec(BaseModel):
    """The policy's observation input: the fields, flattened and concatenated in this order."""

    model_config = _STRICT

    input: str = Field(default="obs", description="name of the ONNX input that takes them")
    fields: list[ObservationField] = Field(min_length=1)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.fields)


class ActionSpec(BaseModel):
    """How the ONNX output becomes 20 position targets (rad) for the hand."""

    model_config = _STRICT

    output: str = Field(default="action", description="name of the ONNX output")
    actuators: list[str] = Field(
        min_length=1, description="actuator names, in the order of the output's rows"
    )
    kind: Literal["continuous", "discrete"] = Field(
        default="continuous",
        description="continuous: one value per actuator in [-1, 1] (clipped); discrete: `bins` "
        "logits per actuator, the largest wins, bin b means -1 + 2 b / (bins - 1)",
    )
    bins: int | None = Field(default=None, ge=2, description="bins per actuator (discrete)")
    mode: Literal["absolute", "relative"] = Field(
        default="absolute",
        description="absolute: a in [-1, 1] spans the actuator's range (target = mid + a * "
        "half-range); relative: target = previous target + a * relative_step * half-range",
    )
    relative_step: float = Field(
        default=0.1, gt=0, le=2, description="relative mode: largest step, share of half-range"
    )
    smoothing: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="exponential moving average: target = smoothing * previous + "
        "(1 - smoothing) * new; 0 is off",
    )
    chunk: int | None = Field(
        default=None,
        ge=1,
        description="the output holds this many actions (H x the action's size), row i for the "
        "observation's cycle + i: an action-chunking model, served from the researcher's "
        "machine by `raas serve-policy BUNDLE` (the robot's own loop refuses it)",
    )

    @field_validator("actuators")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        seen: dict[str, int] = {}
        for i, name in enumerate(v):
            if name in seen:
                raise ValueError(f"{name!r} is listed twice (positions {seen[name]} and {i})")
            seen[name] = i
        return v

    @model_validator(mode="after")
    def _bins(self) -> ActionSpec:
        if self.kind == "discrete" and self.bins is None:
            raise ValueError("bins: required when kind is 'discrete'")
        if self.kind == "continuous" and self.bins is not None:
            raise ValueError(f"bins: {self.bins} given, but bins is only for kind 'discrete'")
        return self

    @property
    def output_size(self) -> int:
        return len(self.actuators) * (self.bins or 1)


class StateTensor(BaseModel):
    """A recurrent state tensor (e.g. an LSTM's h or c): fed from `output` of the previous
    cycle into `input`, reset to `initial` at each episode."""

    model_config = _STRICT

    input: str = Field(description="ONNX input that takes the state")
    output: str = Field(description="ONNX output that gives the next state")
    shape: list[int] | None = Field(
        default=None, description="expected shape (batch 1); None: taken from the model"
    )
    initial: float = Field(default=0.0, description="value of every element at episode start")


class VisionSpec(BaseModel):
    """An optional vision model: the cell's camera images in, the block's pose out."""

    model_config = _STRICT

    model: str = Field(default="vision.onnx", description="file in the bundle")
    cameras: dict[str, str] = Field(
        description="camera name (left, right, top) -> ONNX input name; images go in as "
        "float32 NCHW (1, 3, H, W) scaled to [0, 1]"
    )
    image_width: int = Field(gt=0, description="pixels; must equal the cell's cameras")
    image_height: int = Field(gt=0, description="pixels; must equal the cell's cameras")
    output: str = Field(
        default="pose", description="ONNX output of 7 values: x y z (m), qw qx qy qz"
    )

    @field_validator("cameras")
    @classmethod
    def _some(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("at least one camera")
        return v


class HandSpec(BaseModel):
    """The hand the policy was made for; a cell whose hand differs refuses the bundle at load."""

    model_config = _STRICT

    model: str = Field(
        default="shadow-dexterous",
        min_length=1,
        description="the hand model as the cell's hand driver names it (raasd devices shows "
        "it); bundles without [hand] are for the Shadow-type hand",
    )


class BundleManifest(BaseModel):
    """A policy bundle's manifest (format 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="raas policy bundle manifest")

    format: Literal[1] = Field(default=1, description="manifest format version")
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    model: str = Field(default="model.onnx", description="the policy's ONNX file in the bundle")
    control_period_s: float = Field(
        gt=0, description="the control period the policy was trained for (Dactyl: 0.08)"
    )
    observation: ObservationSpec
    action: ActionSpec
    state: list[StateTensor] = Field(default_factory=list, description="recurrent state")
    vision: VisionSpec | None = None
    hand: HandSpec = Field(default_factory=HandSpec, description="the hand the policy drives")

    @model_validator(mode="after")
    def _names(self) -> BundleManifest:
        names = [self.observation.input, *(s.input for s in self.state)]
        dup = _first_duplicate(names)
        if dup is not None:
            raise ValueError(
                f"state: input {dup!r} is used twice (observation.input and state "
                "inputs must be distinct)"
            )
        outs = [self.action.output, *(s.output for s in self.state)]
        dup = _first_duplicate(outs)
        if dup is not None:
            raise ValueError(
                f"state: output {dup!r} is used twice (action.output and state "
                "outputs must be distinct)"
            )
        return self

    @property
    def object_pose_source(self) -> str:
        """Where the object pose the policy reads comes from: `vision` (its vision model),
        `mocap` (the block's markers), or `none` when no field reads the object pose."""
        if not any("object" in KEYS[f.key].sources for f in self.observation.fields):
            return "none"
        return "vision" if self.vision is not None else "mocap"


def _first_duplicate(names: list[str]) -> str | None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            return n
        seen.add(n)
    return None


#: A check across fields names its field first ("bins: required when ..."); the error's field
#: is then the model's path plus that name, so `action.bins` rather than `action`.
_NAMED = re.compile(r"^Value error, ([a-z_]+): (.*)$", re.DOTALL)


def _loc(err: ValidationError) -> tuple[str, str]:
    first = err.errors()[0]
    parts = [str(p) for p in first["loc"]]
    msg = first["msg"]
    named = _NAMED.match(msg)
    if named is not None:
        parts.append(named.group(1))
        msg = named.group(2)
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return ".".join(parts) or "manifest", msg


def parse_manifest(data: dict[str, Any], source: str = "manifest") -> BundleManifest:
    try:
        return BundleManifest.model_validate(data)
    except ValidationError as err:
        field, msg = _loc(err)
        raise ManifestError(field, f"{msg} (in {source})") from None


def read_manifest(path: Path) -> BundleManifest:
    """Read manifest.toml or manifest.json; a ManifestError names the field at fault."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError("manifest", f"cannot read {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(
            "manifest", f"{path.name} is not valid {path.suffix[1:]}: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise ManifestError("manifest", f"{path.name} must hold a table/object")
    return parse_manifest(data, path.name)


def manifest_schema() -> dict[str, Any]:
    schema = BundleManifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://raas.dev/schemas/policy-bundle-manifest-1.json"
    return schema


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    path.write_text(json.dumps(manifest_schema(), indent=2) + "\n")
    return path
