"""A tiny synthetic store (3 subjects x 2 sentences, test subject unseen) and a tiny trained run
shared by the training, evaluation and checkpoint tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmface4d import cli
from mmface4d.data import pack, split
from mmface4d.synth.corpus import corpus

#: A tiny `ours`: latent 32, 2 decoder blocks, small style channels, 16-frame windows, batch 2.
TINY = [
    "model.latent_dim=32",
    "model.decoder_blocks=2",
    "model.style_channels=8,8,16,16",
    "data.window=16",
    "data.batch_size=2",
    "train.progress=false",
]


def set_args(*settings: str) -> list[str]:
    """``key=value`` settings as the command line's ``--set key=value`` pairs."""
    return [arg for setting in settings for arg in ("--set", setting)]


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    """Packed store of 6 synthetic sequences (60-124 frames, V = 10794), split 2 train / 1 test
    subjects."""
    root = tmp_path_factory.mktemp("animate_store")
    corpus(
        root / "corpus",
        subjects=3,
        sentences=2,
        lang="en",
        seed=0,
        workers=1,
        progress=False,
        head_motion=False,
    )
    pack(root / "corpus", root / "store", workers=1)
    split(root / "store", seed=0, test_fraction=0.34)
    return root / "store"


@pytest.fixture(scope="session")
def tiny_run(tiny_store, tmp_path_factory) -> Path:
    """A run of 10 steps trained through the command line (log every 2, checkpoint every 5)."""
    run = tmp_path_factory.mktemp("animate_run") / "run"
    argv = ["train", "--model", "ours", "--data", str(tiny_store), "-o", str(run), *set_args(*TINY)]
    argv += set_args("optim.steps=10", "train.log_every=2", "train.checkpoint_every=5")
    assert cli.main(argv) == 0
    return run


@pytest.fixture(scope="session")
def packaged(tiny_run, tiny_store, tmp_path_factory) -> Path:
    """The tiny run packaged as an animator file with one training subject's built-in styles."""
    from mmface4d.animate.packaging import package_animator

    out = tmp_path_factory.mktemp("packaged") / "animator.pt"
    return package_animator(tiny_run, out, tiny_store.parent / "corpus", tiny_store, num_subjects=1)


@pytest.fixture(scope="session")
def animator(packaged):
    """The packaged tiny animator, loaded."""
    from mmface4d.animate.animator import Animator

    return Animator.load(packaged)
