import os
import signal
import subprocess
import sys

import pytest
import torch

from mmface4d.animate.checkpoint import load_checkpoint
from mmface4d.animate.distributed import DistContext, ResumableSampler, select_device
from mmface4d.animate.train import train
from mmface4d.errors import InputError

from .conftest import TINY, set_args


def test_resumable_sampler_skips_the_start_of_the_epoch():
    data = list(range(11))
    for rank in (0, 1):
        full = ResumableSampler(data, num_replicas=2, rank=rank, seed=3, drop_last=True)
        full.set_epoch(4)
        order = list(full)
        assert len(order) == 5
        full.skip = 2
        assert list(full) == order[2:] and len(full) == 3
    first = ResumableSampler(data, num_replicas=2, rank=0, seed=3, drop_last=True)
    second = ResumableSampler(data, num_replicas=2, rank=1, seed=3, drop_last=True)
    assert not set(first) & set(second)  # the ranks see different sequences


def test_context_from_env(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert DistContext.from_env() == DistContext() and not DistContext().enabled
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ctx = DistContext.from_env()
    state = (ctx.rank, ctx.world_size, ctx.local_rank, ctx.enabled, ctx.is_main)
    assert state == (1, 2, 1, True, False)


def test_select_device():
    assert select_device("cpu", DistContext()) == torch.device("cpu")
    with pytest.raises(InputError, match="not a device"):
        select_device("gpu0", DistContext())
    if not torch.cuda.is_available():
        assert select_device("auto", DistContext()) == torch.device("cpu")
        with pytest.raises(InputError, match="CUDA is not available"):
            select_device("cuda", DistContext())


def torchrun(store, run, *overrides):
    """``torchrun --standalone --nproc_per_node 2 -m mmface4d train ...``; stdout."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "mmface4d",
        "train",
        "--data",
        str(store),
        "-o",
        str(run),
        *set_args(*overrides),
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the launcher and its two workers
        process.communicate()
        raise
    assert process.returncode == 0, err[-3000:]
    return out


def test_torchrun_two_cpu_processes_match_one_process(tiny_store, tmp_path):
    """DDP on gloo: 2 processes x batch 1 take the same steps as 1 process x batch 2."""
    common = [*TINY, "model.dropout=0", "optim.steps=4", "train.log_every=2"]
    common += ["train.checkpoint_every=2"]
    out = torchrun(tiny_store, tmp_path / "ddp", *common, "data.batch_size=1")
    assert out.count('"world_size": 2') == 1  # only rank 0 reports
    single = train(tiny_store, tmp_path / "one", overrides=[*common, "data.batch_size=2"])
    ddp = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    assert ddp["step"] == 4 and ddp["world_size"] == 2 and len(ddp["rng"]) == 2
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == [
        "checkpoint.pt",
        "config.json",
        "final.pt",
        "log.csv",
    ]
    reference = load_checkpoint(tmp_path / "one" / "final.pt")["model"]
    weights = load_checkpoint(tmp_path / "ddp" / "final.pt")["model"]
    for name, value in reference.items():
        torch.testing.assert_close(weights[name], value, rtol=1e-3, atol=2e-5)
    rows = (tmp_path / "ddp" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["step", "2", "4"]
    assert abs(float(rows[-1].split(",")[1]) - single.final_loss) < 1e-3 * single.final_loss


@pytest.mark.slow
def test_torchrun_resumes(tiny_store, tmp_path):
    common = [*TINY, "data.batch_size=1", "train.log_every=2", "train.checkpoint_every=2"]
    torchrun(tiny_store, tmp_path / "ddp", *common, "optim.steps=2")
    torchrun(tiny_store, tmp_path / "ddp", *common, "optim.steps=4")
    assert load_checkpoint(tmp_path / "ddp" / "final.pt")["step"] == 4
    rows = (tmp_path / "ddp" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["step", "2", "4"]
