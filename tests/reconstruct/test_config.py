"""The reconstruction's configuration (mmface4d.reconstruct.config) and the shared settings
machinery behind it (mmface4d.settings)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import pytest

from mmface4d.errors import InputError
from mmface4d.reconstruct.config import ReconstructConfig, check_config, resolve_config
from mmface4d.settings import apply_dataclass_overrides, load_config_file, update_dataclass


# ---------------------------------------------------------------------- the paper's defaults
def test_defaults_are_the_papers():
    config = resolve_config()
    assert config == ReconstructConfig()
    stages = {
        name: (getattr(config, name).iterations, getattr(config, name).lr)
        for name in ("landmark_stage", "model_stage", "vertex_stage", "tracking_stage")
    }
    assert stages == {
        "landmark_stage": (100, 0.01),
        "model_stage": (500, 0.01),
        "vertex_stage": (500, 0.02),  # the paper's 0.01: see the config's module doc
        "tracking_stage": (200, 0.005),
    }
    assert all(getattr(config, name).plateau == 0.0 for name in stages)  # every iteration
    assert dataclasses.asdict(config.weights) == {
        "colour": 3.0,
        "depth": 2.0,
        "landmark": 300.0,
        "prior": 0.001,
        "edge": 2.0,
        "laplacian": 2.0,
        "offset": 0.01,
    }
    assert config.colour_sigma == 0.1 and config.depth_sigma_mm == 2.0
    assert config.smoothing_hz == 5.0 and config.track_coefficients is True
    assert config.scale == 0.5 and config.backend == "auto" and config.device == "cpu"


def test_to_dict_round_trips_through_json():
    config = resolve_config(overrides=["weights.depth=4", "smoothing_hz=none"])
    values = json.loads(json.dumps(config.to_dict()))
    assert update_dataclass(ReconstructConfig(), values, "saved") == config


# ---------------------------------------------------------------------- overrides
def test_overrides():
    config = resolve_config(
        overrides=[
            "vertex_stage.iterations=10",
            "scale=0.25",
            "smoothing_hz=none",
            "track_coefficients=false",
            "identity_dims=5",
            "weights.edge=1e1",
        ]
    )
    assert config.vertex_stage.iterations == 10 and isinstance(config.vertex_stage.iterations, int)
    assert config.vertex_stage.lr == 0.02  # the rest of the section is kept
    assert config.scale == 0.25 and config.smoothing_hz is None
    assert config.track_coefficients is False and config.identity_dims == 5
    assert config.weights.edge == 10.0
    assert ReconstructConfig().vertex_stage.iterations == 500  # the defaults are untouched


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("scale=2", "scale must be in"),
        ("scale=0", "scale must be in"),
        ("backend=foo", "backend must be one of"),
        ("no_such_key=1", "unknown key 'no_such_key'"),
        ("vertex_stage.steps=3", "unknown key 'vertex_stage.steps'"),
        ("vertex_stage.iterations=-1", "vertex_stage.iterations must be an integer >= 0"),
        ("vertex_stage.iterations=2.5", "expected an integer"),
        ("model_stage.lr=0", "model_stage.lr must be positive"),
        ("tracking_stage.plateau=1", "plateau must be in"),
        ("weights.depth=-1", "weights.depth must be >= 0"),
        ("weights=3", "is a section"),
        ("visibility_every=0", "visibility_every must be >= 1"),
        ("smoothing_hz=0", "smoothing_hz must be positive"),
        ("colour_sigma=0", "must be positive"),
        ("track_coefficients=maybe", "expected true or false"),
        ("scale", "expected section.key=value"),
    ],
)
def test_bad_values_are_one_line_input_errors(override, message):
    with pytest.raises(InputError, match=message) as caught:
        resolve_config(overrides=[override])
    assert "\n" not in str(caught.value)


def test_check_config_on_a_built_config():
    config = ReconstructConfig()
    check_config(config)
    config.landmark_stage.iterations = 0  # allowed: skip a stage
    check_config(config)
    config.visibility_every = 0
    with pytest.raises(InputError, match="visibility_every"):
        check_config(config)


# ---------------------------------------------------------------------- files
def test_toml_file_then_overrides(tmp_path):
    path = tmp_path / "fit.toml"
    path.write_text(
        'version = "0.1"\nscale = 0.5\n\n[model_stage]\niterations = 50\nlr = 0.02\n\n'
        "[weights]\ndepth = 3.0\n"
    )
    config = resolve_config(path, ["model_stage.iterations=7"])
    assert config.scale == 0.5 and config.weights.depth == 3.0
    assert config.model_stage.iterations == 7 and config.model_stage.lr == 0.02  # override wins


def test_json_file_of_a_saved_config(tmp_path):
    saved = resolve_config(overrides=["tracking_stage.iterations=3", "expression_dims=4"])
    path = tmp_path / "reconstruct.json"
    path.write_text(json.dumps({"version": "9", **saved.to_dict()}))
    assert resolve_config(path) == saved


def test_bad_files(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("scale = = 1\n")
    with pytest.raises(InputError, match="not a TOML config file"):
        resolve_config(broken)
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"weights": {"hair": 1}}))
    with pytest.raises(InputError, match="unknown key 'weights.hair'"):
        resolve_config(unknown)
    out_of_range = tmp_path / "range.json"
    out_of_range.write_text(json.dumps({"scale": 3}))
    with pytest.raises(InputError, match="scale must be in"):
        resolve_config(out_of_range)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(InputError, match="expected a mapping"):
        load_config_file(listing)


# ---------------------------------------------------------------------- mmface4d.settings
@dataclass
class Inner:
    size: int = 3
    rate: float = 0.5
    name: str = "a"


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    limit: float | None = 1.0
    shape: tuple[int, ...] = (1, 2)
    pair: tuple[int, float] = (1, 2.0)
    flag: bool = False


def test_apply_dataclass_overrides_converts_types_and_copies():
    base = Outer()
    out = apply_dataclass_overrides(
        base,
        [
            "inner.size=1e3",
            "inner.rate=2",
            "inner.name=b",
            "limit=null",
            "shape=[4, 5, 6]",
            "pair=3,0.25",
            "flag=yes",
        ],
    )
    assert out == Outer(Inner(1000, 2.0, "b"), None, (4, 5, 6), (3, 0.25), True)
    assert base == Outer()  # not modified in place
    assert apply_dataclass_overrides(out, ["shape=7"]).shape == (7,)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("inner.colour=1", "unknown key 'inner.colour'"),
        ("colour=1", "unknown key 'colour'"),
        ("inner=3", "is a section"),
        ("limit.x=1", "has no fields"),
        ("inner.size=three", "expected an integer"),
        ("inner.rate=fast", "expected a number"),
        ("pair=1", "expected 2 values"),
        ("=3", "expected section.key=value"),
    ],
)
def test_apply_dataclass_overrides_errors(override, message):
    with pytest.raises(InputError, match=message):
        apply_dataclass_overrides(Outer(), [override])


def test_update_dataclass_nested_values_and_skip():
    out = update_dataclass(
        Outer(), {"inner": {"size": 9}, "limit": None, "meta": 1}, "cfg.json", skip=("meta",)
    )
    assert out.inner.size == 9 and out.inner.rate == 0.5 and out.limit is None
    with pytest.raises(InputError, match="cfg.json: unknown key 'meta'"):
        update_dataclass(Outer(), {"meta": 1}, "cfg.json")
    with pytest.raises(InputError, match="expected text"):
        update_dataclass(Outer(), {"inner": {"name": 3}}, "cfg.json")
    with pytest.raises(InputError, match="expected a number"):
        update_dataclass(Outer(), {"inner": {"rate": True}}, "cfg.json")


@pytest.mark.parametrize("override", ["colour_sigma=nan", "depth_sigma_mm=nan"])
def test_nan_sigma_is_refused(override):
    with pytest.raises(InputError, match="positive"):
        resolve_config(overrides=[override])
