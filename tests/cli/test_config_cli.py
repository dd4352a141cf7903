"""The settings surface of the configurable verbs (mmface4d.cli.config): --config FILE|PRESET,
--set KEY=VALUE, --print-config and a --help generated from the config dataclasses."""

from __future__ import annotations

import argparse
import json
import tomllib

import pytest

from mmface4d import cli
from mmface4d.animate.config import TrainConfig
from mmface4d.animate.registry import get_model, model_names
from mmface4d.reconstruct.config import ReconstructConfig
from mmface4d.settings import describe_keys

#: every verb whose settings are a config dataclass
CONFIG_VERBS = ("train", "reconstruct")


def verb_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def help_text(verb, capsys) -> str:
    with pytest.raises(SystemExit) as exited:
        cli.main([verb, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_the_configurable_verbs_share_the_settings_options():
    parsers = verb_parsers()
    configurable = {name for name, p in parsers.items() if p.get_default("config_verb")}
    assert configurable == set(CONFIG_VERBS)
    for name in CONFIG_VERBS:
        options = {s for a in parsers[name]._actions for s in a.option_strings}
        assert {"--config", "--set", "--print-config", "--help"} <= options, name


@pytest.mark.parametrize("verb", CONFIG_VERBS)
def test_print_config_needs_no_inputs_and_reads_back(verb, capsys, tmp_path):
    code, out, _ = run([verb, "--print-config"], capsys)
    assert code == 0 and tomllib.loads(out)
    path = tmp_path / "settings.toml"
    path.write_text(out)
    code, again, _ = run([verb, "--config", str(path), "--print-config"], capsys)
    assert code == 0 and again == out  # the printed settings are a config file of themselves
    key, value = ("optim.steps", 7) if verb == "train" else ("scale", 0.25)
    argv = [verb, "--config", str(path), "--set", f"{key}={value}", "--print-config", "json"]
    code, changed, _ = run(argv, capsys)
    values = json.loads(changed)
    for part in key.split("."):
        values = values[part]
    assert code == 0 and values == value


def test_reconstruct_preset_by_name_and_set_on_top(capsys):
    argv = ["reconstruct", "--config", "paper", "--set", "scale=0.25", "--print-config", "json"]
    code, out, _ = run(argv, capsys)
    values = json.loads(out)
    assert code == 0 and values["visibility_every"] == 1 and values["crop_margin"] is None
    assert values["scale"] == 0.25
    code, out, _ = run(["reconstruct", "--config", "fast", "--print-config"], capsys)
    assert code == 0 and tomllib.loads(out)["tracking_stage"]["iterations"] == 60


def test_train_preset_names_its_model(capsys):
    code, out, _ = run(["train", "--config", "table2_meshtalk", "--print-config", "json"], capsys)
    values = json.loads(out)
    assert code == 0 and values["model_name"] == "meshtalk" and values["optim"]["steps"] == 2000
    argv = ["train", "--config", "table2_ours", "--ablation", "regional", "--print-config"]
    code, out, _ = run(argv, capsys)
    values = tomllib.loads(out)
    assert values["ablation"] == "regional" and values["model"]["regional"] is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reconstruct", "--config", "papr"], "config 'papr': no such file, nor a reconstruct "
         "preset (fast, paper)"),
        (["train", "--config", "nope", "--print-config"], "nor a train preset (lipsync_mel, "),
        (["train", "--data", "x", "-o", "y", "optim.steps=5"],
         "unexpected optim.steps=5: settings are given with --set (--set optim.steps=5)"),
        (["reconstruct", "in", "-o", "out", "scale=0.5"], "(--set scale=0.5)"),
        (["train", "--set", "optim.steps=5"], "required: --data, -o/--output"),
        (["reconstruct", "-o", "out"], "the following arguments are required: INPUT"),
        (["train", "--set", "optim.steps", "--print-config"], "expected section.key=value"),
        (["reconstruct", "--set", "scale=3", "--print-config"], "scale must be in"),
    ],
)  # fmt: skip
def test_user_mistakes_are_one_line_with_status_2(argv, message, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    assert err.startswith("mmface4d: error: ") and err.count("\n") == 1
    assert message in err


def test_other_stray_arguments_keep_argparse_s_error(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["nut", "decode", "prefix", "b=1", "-o", "x.npy"])
    assert exited.value.code == 2
    assert "unrecognized arguments: b=1" in capsys.readouterr().err


def test_reconstruct_help_lists_every_key_from_the_field_docs(capsys):
    text = help_text("reconstruct", capsys)
    for key in describe_keys(ReconstructConfig()):
        if key.type == "section":
            assert f"[{key.key}]" in text
        else:
            assert f"  {key.key} ({key.type}, default {key.default})" in text
    assert "crop_margin (float | None, default 0.2)" in text  # missing from the old list
    assert "Geman-McClure scale of the depth residual, millimetres." in text
    assert "presets: fast, paper" in text
    assert "Keys: landmark_stage /" not in text  # the hand-written list is gone


def test_train_help_lists_keys_models_and_ablations(capsys):
    text = help_text("train", capsys)
    for key in describe_keys(TrainConfig(), skip=("model_name", "ablation", "model")):
        assert (f"[{key.key}]" if key.type == "section" else f"  {key.key} (") in text
    assert "  optim.lr (float, default 0.0001)\n      Learning rate (the paper: 1e-4)." in text
    for name in model_names():
        entry = get_model(name)
        assert f"  {name}: " in text
        for ablation in entry.ablations:
            assert ablation in text
        for key in describe_keys(entry.config_type(), prefix="model."):
            assert f"    {key.key} ({key.type}" in text
    assert "composite (model.composite=false)" in text
    assert "cross_modality (model.cross_modality_weight=0.0)" in text
    presets = "presets: lipsync_mel, lipsync_phonetic, lipsync_phonetic_eq8, table2_faceformer, "
    assert presets + "table2_meshtalk, table2_ours" in " ".join(text.split())
