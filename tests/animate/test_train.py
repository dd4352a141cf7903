import csv
import json
import shutil

import pytest
import torch
from torch.utils.data import DataLoader

from mmface4d import __version__, cli
from mmface4d.animate import checkpoint as ckpt
from mmface4d.animate.checkpoint import build_pipeline, load_checkpoint
from mmface4d.animate.config import resolve_config
from mmface4d.animate.train import batch_loss, train
from mmface4d.data.dataset import FaceSequenceDataset

from .conftest import TINY, set_args


def read_log(run):
    with open(run / "log.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_cli_run_folder(tiny_run):
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["version"] == __version__ and config["model_name"] == "ours"
    assert config["model"]["latent_dim"] == 32 and config["model"]["style_channels"] == [
        8,
        8,
        16,
        16,
    ]
    assert config["model"]["composite"] and config["model"]["regional"]
    assert config["data"]["window"] == 16 and config["optim"]["steps"] == 10
    rows = read_log(tiny_run)
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8, 10]
    assert set(rows[0]) == {"step", "loss", "lr", "seconds", "reconstruction", "regional"}
    assert all(float(r["lr"]) == 1e-4 for r in rows)
    for r in rows:  # the logged loss is eq. 8 of its logged terms (learning: the fixed-batch test)
        total = float(r["reconstruction"]) + 1e-6 * float(r["regional"])
        assert float(r["loss"]) == pytest.approx(total, rel=1e-5)
    seconds = [float(r["seconds"]) for r in rows]
    assert seconds == sorted(seconds) and seconds[0] > 0
    state = load_checkpoint(tiny_run / "checkpoint.pt")
    assert state["step"] == 10 and {"optimizer", "rng", "seconds"} <= set(state)
    assert load_checkpoint(tiny_run / "final.pt")["step"] == 10


def test_loss_decreases_on_a_fixed_batch(tiny_store):
    torch.manual_seed(0)
    config = resolve_config(ablation="regional", overrides=TINY + ["model.dropout=0"])
    dataset = FaceSequenceDataset(tiny_store, "train", window=16)
    batch = next(iter(DataLoader(dataset, batch_size=2)))
    pipeline = build_pipeline(config, dataset.records[0].num_vertices)
    optimizer = torch.optim.Adam(pipeline.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = batch_loss(pipeline, pipeline, batch, torch.device("cpu"))
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
        losses.append(float(loss.terms["reconstruction"]))
    assert losses[-1] < 0.5 * losses[0], losses


def test_resume_continues_where_it_stopped_and_matches_an_uninterrupted_run(tiny_store, tmp_path):
    common = TINY + ["train.log_every=1", "train.checkpoint_every=3"]
    straight = train(tiny_store, tmp_path / "straight", overrides=common + ["optim.steps=7"])
    first = train(tiny_store, tmp_path / "resumed", overrides=common + ["optim.steps=3"])
    assert (first.start_step, first.steps) == (0, 3)
    more = ["optim.steps=7", "data.workers=1"]  # loader settings may change on resume
    second = train(tiny_store, tmp_path / "resumed", overrides=common + more)
    assert (second.start_step, second.steps) == (3, 7)  # continued from 3, across an epoch edge
    a = load_checkpoint(tmp_path / "straight" / "final.pt")["model"]
    b = load_checkpoint(tmp_path / "resumed" / "final.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # nothing lost: the same weights
    assert [r["loss"] for r in read_log(tmp_path / "resumed")] == [
        r["loss"] for r in read_log(tmp_path / "straight")
    ]
    assert straight.final_loss == second.final_loss
    again = train(tiny_store, tmp_path / "resumed", overrides=common + ["optim.steps=7"])
    assert (again.start_step, again.steps) == (7, 7)  # a finished run stays finished


def test_killed_checkpoint_write_keeps_the_last_good_one(tiny_store, tmp_path, monkeypatch):
    run = tmp_path / "run"
    overrides = TINY + ["train.log_every=1", "train.checkpoint_every=2", "optim.steps=5"]
    real_save, calls = torch.save, []

    def dies_on_second_checkpoint(obj, f):
        calls.append(obj["step"])
        real_save(obj, f)
        if len(calls) == 2:  # the step-4 checkpoint: half written, then the process is killed
            with open(f, "r+b") as file:
                file.truncate(file.seek(0, 2) // 2)
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.torch, "save", dies_on_second_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_store, run, overrides=overrides)
    monkeypatch.undo()
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 2
    assert [int(r["step"]) for r in read_log(run)] == [1, 2, 3, 4]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "config.json", "log.csv"]
    result = train(tiny_store, run, overrides=overrides)
    assert (result.start_step, result.steps) == (2, 5)
    assert [int(r["step"]) for r in read_log(run)] == [1, 2, 3, 4, 5]  # redone rows, no repeats


@pytest.mark.parametrize("ablation, field", [("composite", "composite"), ("regional", "regional")])
def test_ablation_flags_reach_the_saved_config(tiny_store, tmp_path, ablation, field):
    run = tmp_path / ablation
    argv = ["train", "--ablation", ablation, "--data", str(tiny_store), "-o", str(run)]
    assert cli.main([*argv, *set_args(*TINY, "optim.steps=1")]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["ablation"] == ablation and config["model"][field] is False
    other = "regional" if field == "composite" else "composite"
    assert config["model"][other] is True
    if ablation == "regional":
        assert set(read_log(run)[0]) == {"step", "loss", "lr", "seconds", "reconstruction"}


def test_config_file_reproduces_a_run(tiny_run, tiny_store, tmp_path):
    result = train(
        tiny_store,
        tmp_path / "copy",
        config_file=tiny_run / "config.json",
        overrides=["optim.steps=1"],
    )
    saved = json.loads((tmp_path / "copy" / "config.json").read_text())
    assert result.steps == 1 and saved["model"]["latent_dim"] == 32


def run_cli(argv, capsys):
    code = cli.main(argv)
    return code, capsys.readouterr().err


def test_errors(tiny_store, tiny_run, tmp_path, capsys):
    common = ["train", "--data", str(tiny_store), *set_args(*TINY)]
    base = [*common, "--set", "optim.steps=1"]
    code, err = run_cli([*base, "--model", "nope", "-o", str(tmp_path / "a")], capsys)
    assert code == 2 and "unknown name 'nope'" in err and "ours" in err
    code, err = run_cli([*base, "--set", "data.split=val", "-o", str(tmp_path / "b")], capsys)
    assert code == 2 and "no 'val' split (it has test, train)" in err
    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_run, corrupt)
    (corrupt / "checkpoint.pt").write_bytes(b"\x00garbage" * 100)
    code, err = run_cli([*common, "--set", "optim.steps=20", "-o", str(corrupt)], capsys)
    assert code == 2 and "not a readable checkpoint" in err
    code, err = run_cli([*base, "--set", "model.latent_dim=16", "-o", str(tiny_run)], capsys)
    assert code == 2 and "another model config" in err  # resuming with another architecture
    code, err = run_cli([*base, "-o", str(tiny_run)], capsys)
    assert code == 2 and "beyond optim.steps=1" in err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    code, err = run_cli([*base, "-o", str(tmp_path / "other")], capsys)
    assert code == 2 and "not a training run" in err
    code, err = run_cli([*base, "--set", "data.batch_size=5", "-o", str(tmp_path / "c")], capsys)
    assert code == 2 and "fewer than data.batch_size=5" in err
    assert not any((tmp_path / name).exists() for name in "abc")  # nothing written
    code, err = run_cli([*base, "--set", "train.tensorboard=on", "-o", str(tmp_path / "d")], capsys)
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        assert code == 3 and "pip install tensorboard" in err
        assert not (tmp_path / "d").exists()  # checked before anything is written
    assert load_checkpoint(tiny_run / "checkpoint.pt")["step"] == 10  # untouched by the above


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mixed_precision_on_cuda(tiny_store, tmp_path):
    result = train(tiny_store, tmp_path / "run", overrides=TINY + ["optim.steps=3"])
    assert result.device.startswith("cuda") and result.final_loss == result.final_loss
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["model"]["net.encoding.weight"].dtype == torch.float32


def test_a_non_finite_loss_stops_before_the_checkpoint_is_spoiled(
    tiny_store, tmp_path, monkeypatch
):
    from mmface4d.animate.model import OursAnimator

    real_loss, calls = OursAnimator.loss, []

    def nan_from_step_three(self, prediction, target, mask=None):
        calls.append(1)
        losses = real_loss(self, prediction, target, mask)
        if len(calls) >= 3:
            losses.total = losses.total * float("nan")
        return losses

    monkeypatch.setattr(OursAnimator, "loss", nan_from_step_three)
    overrides = [*TINY, "optim.steps=5", "train.checkpoint_every=2"]
    with pytest.raises(FloatingPointError, match="by step 3"):
        train(tiny_store, tmp_path / "run", overrides=overrides)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_a_fine_tuned_encoder_is_trained_and_saved(tiny_store, tiny_run, tmp_path):
    pytest.importorskip("transformers")
    from mmface4d.animate.checkpoint import load_run
    from mmface4d.audio.encoders import build_encoder

    spec = "random-hubert:size=tiny,trainable=true"
    overrides = [*TINY, f"encoder.spec={spec}", "optim.steps=2", "optim.lr=1e-3"]
    train(tiny_store, tmp_path / "run", overrides=overrides)
    saved = load_checkpoint(tmp_path / "run" / "final.pt")
    assert saved["audio_dim"] == 32 and saved["config"]["model"]["audio_dim"] == 32
    initial = build_encoder(spec).state_dict()
    changed = [k for k, v in saved["encoder"].items() if not torch.equal(v, initial[k])]
    assert changed  # the encoder took optimiser steps
    trained = load_run(tmp_path / "run")
    loaded = trained.pipeline.encoder.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in saved["encoder"].items())
    assert load_checkpoint(tiny_run / "final.pt")["encoder"] is None  # frozen mel: not saved


def test_print_config(capsys, tmp_path):
    argv = ["train", "--data", "x", "-o", str(tmp_path / "r"), "--ablation", "regional"]
    assert cli.main([*argv, "--print-config", "json", "--set", "optim.steps=5"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["optim"]["steps"] == 5 and config["model"]["regional"] is False
    assert not (tmp_path / "r").exists()
