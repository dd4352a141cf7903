import dataclasses
import json

import pytest

from mmface4d import __version__
from mmface4d.animate.config import (
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    resolve_config,
    save_config,
)
from mmface4d.animate.model import OursConfig
from mmface4d.errors import InputError


def test_defaults_follow_the_paper():
    config = resolve_config()
    assert config.model_name == "ours" and config.ablation is None
    assert config.model == OursConfig()
    assert config.encoder.spec == "mel"
    assert config.optim.lr == 1e-4 and config.data.batch_size == 8
    assert config.optim.steps == 1_000_000


def test_overrides_convert_to_field_types():
    config = resolve_config(
        overrides=[
            "model.latent_dim=128",
            "optim.lr=3e-4",
            "optim.steps=2e3",
            "model.composite=false",
            "model.style_channels=8,8,16,16",
            "optim.betas=[0.8, 0.99]",
            "train.device=cpu",
            "encoder.spec=hubert:path=/m,layer=12",
        ]
    )
    assert config.model.latent_dim == 128 and isinstance(config.model.latent_dim, int)
    assert config.optim.lr == 3e-4 and config.optim.steps == 2000
    assert config.model.composite is False
    assert config.model.style_channels == (8, 8, 16, 16)
    assert config.optim.betas == (0.8, 0.99)
    assert config.train.device == "cpu"
    assert config.encoder.spec == "hubert:path=/m,layer=12"  # split at the first '=' only


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.nope=1", "unknown key 'model.nope'"),
        ("optimiser.lr=1", "unknown key 'optimiser.lr'"),
        ("model.latent_dim=1.5", "expected an integer"),
        ("model.latent_dim=big", "expected an integer"),
        ("model.composite=maybe", "true or false"),
        ("optim.betas=1,2,3", "expected 2 values"),
        ("optim=3", "is a section"),
        ("optim.lr", "expected section.key=value"),
        ("model_name=x", "--model"),
        ("optim.steps=0", "optim.steps: expected a positive integer"),
        ("optim.lr=-1", "optim.lr: invalid value"),
        ("train.tensorboard=maybe", "train.tensorboard"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(InputError, match=message):
        resolve_config(overrides=[override])


def test_ablations_change_the_model_config():
    assert resolve_config(ablation="composite").model.composite is False
    assert resolve_config(ablation="regional").model.regional is False
    with pytest.raises(InputError, match="unknown ablation"):
        resolve_config(ablation="temporal")
    with pytest.raises(InputError, match="unknown name"):
        resolve_config("nope")


def test_precedence_file_then_ablation_then_overrides(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps({"model": {"composite": True, "latent_dim": 64}, "optim": {"lr": 1}})
    )
    config = resolve_config(
        ablation="composite", config_file=path, overrides=["optim.lr=0.5", "model.latent_dim=8"]
    )
    assert config.model.composite is False  # the ablation beats the file
    assert config.model.latent_dim == 8 and config.optim.lr == 0.5  # overrides beat both


def test_saved_config_round_trips_and_serves_as_config_file(tmp_path):
    config = resolve_config(ablation="regional", overrides=["model.latent_dim=40", "data.window=9"])
    save_config(config, tmp_path / "config.json")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["version"] == __version__ and saved["model"]["latent_dim"] == 40
    assert config_from_dict(saved, "x") == config
    again = resolve_config(config_file=tmp_path / "config.json")
    assert again == config  # model name and ablation come from the file too
    assert json.loads(json.dumps(config_to_dict(again))) == saved


def test_toml_config_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[optim]\nsteps = 20\n[model]\nstyle_channels = [4, 4, 8, 8]\n")
    config = resolve_config(config_file=path)
    assert config.optim.steps == 20 and config.model.style_channels == (4, 4, 8, 8)


def test_bad_config_files(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="not a JSON config"):
        resolve_config(config_file=path)
    path.write_text("[1, 2]")
    with pytest.raises(InputError, match="mapping of sections"):
        resolve_config(config_file=path)
    path.write_text(json.dumps({"data": {"windw": 3}}))
    with pytest.raises(InputError, match="unknown key 'data.windw'"):
        resolve_config(config_file=path)


def test_apply_overrides_does_not_mutate():
    config = TrainConfig(model=OursConfig())
    changed = apply_overrides(config, ["model.latent_dim=8"])
    assert config.model.latent_dim == 256 and changed.model.latent_dim == 8
    assert dataclasses.replace(changed, model=config.model) == config
