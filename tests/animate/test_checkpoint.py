import random

import pytest
import torch

from mmface4d.animate import checkpoint as ckpt
from mmface4d.animate.checkpoint import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    load_run,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from mmface4d.errors import InputError


def minimal_state(step=3):
    return {
        "step": step,
        "config": {"model_name": "ours"},
        "model": {"w": torch.arange(4.0)},
        "num_vertices": 5,
        "audio_dim": 2,
    }


def test_round_trip(tmp_path):
    save_checkpoint(tmp_path / "c.pt", minimal_state())
    state = load_checkpoint(tmp_path / "c.pt")
    assert state["format"] == CHECKPOINT_FORMAT and state["step"] == 3
    assert torch.equal(state["model"]["w"], torch.arange(4.0))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"garbage", "not a readable checkpoint"),
        (b"", "not a readable checkpoint"),
        ("truncated", "not a readable checkpoint"),
        ("plain", "not an mmface4d training checkpoint"),
        ("incomplete", "lacks"),
    ],
)
def test_bad_files_are_input_errors(tmp_path, content, message):
    path = tmp_path / "c.pt"
    if content == "truncated":
        save_checkpoint(path, minimal_state())
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif content == "plain":
        torch.save({"model": {}}, path)
    elif content == "incomplete":
        torch.save({"format": CHECKPOINT_FORMAT, "step": 1}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_checkpoint(path)


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, minimal_state(step=3))
    real_save = torch.save

    def killed_mid_write(obj, f):
        real_save(obj, f)
        with open(f, "r+b") as file:  # half the bytes made it to disk, then the process died
            file.truncate(file.seek(0, 2) // 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.torch, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, minimal_state(step=9))
    assert load_checkpoint(path)["step"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left


def test_rng_state_round_trip(tmp_path):
    torch.manual_seed(4)
    random.seed(4)
    save_checkpoint(tmp_path / "c.pt", minimal_state() | {"rng": [rng_state()]})
    expected = (torch.rand(3), random.random())
    state = load_checkpoint(tmp_path / "c.pt")
    set_rng_state(state["rng"][0])
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]


def test_load_run_predicts_a_whole_sequence(tiny_run, tiny_store):
    from mmface4d.data.dataset import FaceSequenceDataset

    trained = load_run(tiny_run)
    assert trained.checkpoint.name == "final.pt" and trained.step == 10
    assert trained.config.model.latent_dim == 32
    assert not trained.pipeline.training
    item = FaceSequenceDataset(tiny_store, "test", window=None)[0]
    T = len(item["vertices"])
    vertices = trained.predict(item["audio"], item["fps"], item["template"], item["style_vertices"])
    assert vertices.shape == (T, trained.num_vertices, 3)  # T from the audio length
    assert torch.isfinite(vertices).all()
    again = trained.predict(item["audio"], item["fps"], item["template"], item["style_vertices"])
    torch.testing.assert_close(vertices, again)  # eval mode: no dropout


def test_load_run_errors(tmp_path):
    with pytest.raises(InputError, match="not a run folder"):
        load_run(tmp_path / "missing")
    with pytest.raises(InputError, match="train it first"):
        load_run(tmp_path)


def test_a_run_loads_its_weights_without_drawing_random_initial_values(tiny_run):
    """Loading builds the model without its random initialisation (every parameter is read
    from the file right after): the weights are the file's, the random state is untouched."""
    torch.manual_seed(1)
    expected = torch.get_rng_state()
    trained = load_run(tiny_run)
    assert torch.equal(torch.get_rng_state(), expected)
    stored = load_checkpoint(trained.checkpoint)["model"]
    loaded = trained.pipeline.model.state_dict()
    assert loaded.keys() == stored.keys()
    assert all(torch.equal(loaded[key], stored[key]) for key in stored)


def test_weights_that_do_not_fit_the_configuration_are_an_input_error(tiny_run, tmp_path):
    state = load_checkpoint(tiny_run / "final.pt")
    state["model"].pop(next(iter(state["model"])))  # a parameter the build leaves unset
    save_checkpoint(tmp_path / "final.pt", {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(InputError, match="do not fit the saved configuration"):
        load_run(tmp_path)
