"""mmface4d.settings beyond the overrides (tests/reconstruct/test_config.py has those): the one
key=value parser, the field docs behind --help, TOML output and the presets."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from mmface4d.animate.config import TrainConfig, config_to_dict
from mmface4d.animate.config import resolve_config as resolve_train
from mmface4d.animate.registry import default_model_config
from mmface4d.errors import InputError
from mmface4d.reconstruct.config import ReconstructConfig
from mmface4d.reconstruct.config import resolve_config as resolve_reconstruct
from mmface4d.settings import (
    coerce,
    describe_keys,
    field_docs,
    find_config,
    format_value,
    keys_help,
    load_config_file,
    parse_options,
    preset_names,
    presets_dir,
    split_assignment,
    to_toml,
    update_dataclass,
)

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- key=value
def test_split_assignment_strips_and_keeps_later_equals():
    assert split_assignment(" a.b = x=y ", "override") == ("a.b", "x=y")
    with pytest.raises(InputError, match=r"^--expression: expected NAME=WEIGHT, found 'jaw'$"):
        split_assignment("jaw", "--expression", "NAME=WEIGHT")
    with pytest.raises(InputError, match="expected key=value"):
        split_assignment("=3", "override")


def test_parse_options():
    assert parse_options("a=1, b=x:y=z,,", "spec 's'") == {"a": "1", "b": "x:y=z"}
    assert parse_options("", "spec 's'") == {}
    with pytest.raises(InputError, match="spec 's': expected key=value, found 'b'"):
        parse_options("a=1,b", "spec 's'")
    with pytest.raises(InputError, match="spec 's': option 'a' given twice"):
        parse_options("a=1,a=2", "spec 's'")


def test_coerce_takes_library_values_as_well_as_text():
    assert coerce(np.int64(3), int, "k") == 3 and coerce(np.float32(0.5), float, "k") == 0.5
    assert coerce(Path("/m"), str, "k") == os.fspath(Path("/m"))
    assert coerce("null", str | None, "k") is None and coerce("7", int | None, "k") == 7
    with pytest.raises(InputError, match="k: expected a number, found \\[1\\]"):
        coerce([1], float, "k")


def test_the_spec_parsers_share_the_conversion():
    from mmface4d.audio.encoders import EncoderOption, _coerce
    from mmface4d.facemodel.api import parse_expression_weights
    from mmface4d.facemodel.sources import load_face_model
    from mmface4d.facemodel.synth import SynthFaceConfig

    option = EncoderOption(int, 1, "", optional=True)
    assert _coerce("mel", "n", "1e2", option) == 100 and _coerce("mel", "n", "None", option) is None
    with pytest.raises(InputError, match="mel: option n expects int, found 'x'"):
        _coerce("mel", "n", "x", option)
    assert SynthFaceConfig.from_options({"grid_columns": "6e1"}).grid_columns == 60
    with pytest.raises(InputError, match="synth option grid_columns: expected an integer"):
        SynthFaceConfig.from_options({"grid_columns": "x"})
    with pytest.raises(InputError, match="face model spec 'synth:grid_columns': expected key="):
        load_face_model("synth:grid_columns")
    assert parse_expression_weights([" jawOpen = 0.5", "a=1e-1"]) == {"jawOpen": 0.5, "a": 0.1}
    for bad in ("jawOpen", "=1", "jawOpen=x", "jawOpen=inf"):
        with pytest.raises(InputError, match="expected NAME=WEIGHT with a finite number"):
            parse_expression_weights([bad])


# ----------------------------------------------------------------------------- field docs
@dataclass
class Inner:
    """A section."""

    size: int = 3
    """How many
    (two lines)."""
    rate: float = 0.5


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    """The inner part, see :class:`~mmface4d.settings.KeyDoc` and ``size``."""
    limit: float | None = None
    """Upper limit (:mod:`mmface4d.settings`)."""
    pair: tuple[float, float] = (1.0, 2.5)
    """A range."""
    flag: bool = True
    name: str = ""
    """Two sections' same field."""


@dataclass
class Derived(Outer):
    extra: int = 1
    """Added by the subclass."""


def test_field_docs_read_the_string_after_each_field():
    assert field_docs(Inner) == {"size": "How many (two lines)."}
    docs = field_docs(Derived)
    assert docs["extra"] == "Added by the subclass." and docs["pair"] == "A range."
    assert "flag" not in docs


def test_describe_keys_lists_sections_and_fields_with_types_and_defaults():
    keys = describe_keys(Derived(), skip=("name",))
    assert [k.key for k in keys] == [
        "inner",
        "inner.size",
        "inner.rate",
        "limit",
        "pair",
        "flag",
        "extra",
    ]
    by_key = {k.key: k for k in keys}
    assert by_key["inner"].type == "section"
    assert by_key["inner"].doc == "The inner part, see KeyDoc and size."
    assert (by_key["limit"].type, by_key["limit"].default) == ("float | None", "none")
    assert by_key["limit"].doc == "Upper limit (mmface4d.settings)."
    assert (by_key["pair"].type, by_key["pair"].default) == ("tuple[float, float]", "1.0,2.5")
    assert by_key["flag"].default == "true" and by_key["flag"].doc == ""
    assert [k.key for k in describe_keys(Inner(), prefix="model.")] == ["model.size", "model.rate"]


def test_keys_help_text():
    text = keys_help(describe_keys(Outer()))
    assert "  [inner] The inner part" in text
    assert "  inner.size (int, default 3)\n      How many (two lines)." in text
    assert "  name (str, default '')" in text
    assert format_value((1, 2.0)) == "1,2.0" and format_value(False) == "false"


def test_every_config_field_is_documented():
    """The help lists every key's meaning: each field of the shipped configs has a doc."""
    models = [default_model_config(name) for name in ("ours", "faceformer", "meshtalk")]
    for config in (ReconstructConfig(), TrainConfig(), *models):
        undocumented = [k.key for k in describe_keys(config) if not k.doc]
        assert undocumented == []


# ----------------------------------------------------------------------------- TOML
def test_to_toml_reads_back_to_the_same_config(tmp_path):
    config = resolve_reconstruct(overrides=["crop_margin=none", "weights.depth=4"])
    text = to_toml(config.to_dict())
    assert 'crop_margin = "none"' in text and "\n[weights]\ncolour = 3.0\ndepth = 4.0" in text
    path = tmp_path / "r.toml"
    path.write_text(text)
    assert resolve_reconstruct(path) == config
    train = resolve_train("meshtalk", overrides=["optim.betas=0.8,0.9", "optim.eps=1e-9"])
    path = tmp_path / "t.toml"
    path.write_text(to_toml(config_to_dict(train)))
    assert tomllib.loads(path.read_text())["model_name"] == "meshtalk"
    assert resolve_train(config_file=path) == train  # ablation "none" reads back as None


def test_to_toml_values():
    text = to_toml({"a": 'say "hi"', "b": float("inf"), "c": [1, 2], "d": {"e": {"f": None}}})
    assert tomllib.loads(text) == {
        "a": 'say "hi"',
        "b": float("inf"),
        "c": [1, 2],
        "d": {"e": {"f": "none"}},
    }


# ----------------------------------------------------------------------------- presets
def test_presets_are_found_in_the_checkout_s_configs_folder():
    assert presets_dir() == ROOT / "configs"
    assert preset_names("reconstruct") == ["fast", "paper"]
    assert {"table2_ours", "table2_faceformer", "table2_meshtalk"} <= set(preset_names("train"))
    assert find_config("paper", "reconstruct") == ROOT / "configs" / "reconstruct" / "paper.toml"
    assert preset_names("no_such_verb") == []


def test_a_file_wins_over_a_preset_of_the_same_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("paper").write_text("scale = 0.25\n")
    assert find_config("paper", "reconstruct") == Path("paper")
    assert find_config(tmp_path / "paper", "reconstruct") == tmp_path / "paper"


def test_an_unknown_name_is_one_line_listing_the_presets():
    with pytest.raises(InputError) as caught:
        find_config("papre", "reconstruct")
    message = str(caught.value)
    assert message == "config 'papre': no such file, nor a reconstruct preset (fast, paper)"
    with pytest.raises(InputError, match="nor a train preset .*table2_ours"):
        resolve_train(config_file="missing.toml")


def test_reconstruct_presets_are_the_benchmarked_settings():
    """paper and fast are the settings benchmarks/results/reconstruct.json was measured with."""
    measured = json.loads((ROOT / "benchmarks/results/reconstruct.json").read_text())["settings"]
    for name in ("paper", "fast"):
        overrides = [o for o in measured[name]["overrides"] if not o.startswith("scale=")]
        assert resolve_reconstruct(name) == resolve_reconstruct(None, overrides), name
    assert resolve_reconstruct("paper").crop_margin is None


def test_train_presets_pick_their_model():
    for model in ("ours", "faceformer", "meshtalk"):
        config = resolve_train(config_file=f"table2_{model}")
        assert config.model_name == model and config.optim.steps == 2000
        assert config.data.window == 48 and config.augment.enabled is True
    assert resolve_train(config_file="table2_ours").model.latent_dim == 64
    values = load_config_file(find_config("table2_ours", "train"))
    assert (
        update_dataclass(
            TrainConfig(model=resolve_train().model), values, "x", skip=("model_name",)
        ).optim.lr
        == 3e-4
    )
