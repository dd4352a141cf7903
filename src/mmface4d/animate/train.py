"""``mmface4d train``: train a registered speech-to-face model on a packed store.

This module is the recipe: the training windows of the store, the pipeline (audio encoder +
registered model), the model forwarder :func:`batch_loss` (the model's own loss plus the
``loss.*`` lip-sync terms) and the checks of the run folder; the loop itself is the generic
:class:`~mmface4d.animate.trainer.Trainer` (restore, step, log, checkpoint, run).

One script for one device and for many: under ``torchrun`` (``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` set) it joins a process group (NCCL on CUDA, gloo on CPU), shards the data with a
:class:`~torch.utils.data.DistributedSampler` and wraps the model in DDP; only rank 0 logs and
writes files. ``data.batch_size`` is per process.

Resuming: re-running the same command on the same ``-o RUN`` continues from
``RUN/checkpoint.pt`` (model, optimizer, loss scaler, step, elapsed time, every process's RNG
state, the position in the data order); log rows written after that checkpoint are dropped, so
a killed run loses nothing and a single-process run resumed after a kill gives the same weights
as one that never stopped. Raising ``optim.steps`` continues a finished run. The model, its
ablation and the encoder must match the checkpoint; the other settings may change.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from mmface4d.animate.checkpoint import (
    CHECKPOINT_NAME,
    FINAL_NAME,
    SpeechToFace,
    build_pipeline,
    config_from_dict,
    load_checkpoint,
)
from mmface4d.animate.config import LossConfig, TrainConfig, resolve_config
from mmface4d.animate.distributed import DistContext, ResumableSampler, select_device
from mmface4d.animate.interface import ModelLoss
from mmface4d.animate.losses import lip_sync_loss
from mmface4d.animate.trainer import CONFIG_NAME, LOG_NAME, Trainer, seed_everything
from mmface4d.data.analysis import resolve_landmarks
from mmface4d.data.dataset import FaceSequenceDataset
from mmface4d.data.splits import load_splits
from mmface4d.data.store import Store
from mmface4d.errors import InputError
from mmface4d.facemodel.regions import inner_lip_pairs

LOG_COLUMNS = ("step", "loss", "lr", "seconds")


@dataclass
class TrainResult:
    """What a call to :func:`train` did.

    Attributes:
        run: the run folder.
        model: registered model name; ablation: its ablation or None.
        start_step: step it started from (0, or the checkpoint's when resumed).
        steps: step reached.
        final_loss: mean loss of the last logged interval (NaN when no step ran).
        seconds: training time over all sessions of this run.
        checkpoint, final, log: RUN/checkpoint.pt, RUN/final.pt, RUN/log.csv.
        world_size: processes; device: this process's device.
        tensorboard: whether TensorBoard events were written.
    """

    run: Path
    model: str
    ablation: str | None
    start_step: int
    steps: int
    final_loss: float
    seconds: float
    checkpoint: Path
    final: Path
    log: Path
    world_size: int
    device: str
    tensorboard: bool


def require_split(store: Store, split: str) -> list[str]:
    """The sequence ids of ``split``; an :class:`InputError` naming the store's splits if none."""
    splits = load_splits(store)
    if splits is None:
        raise InputError(f"{store.url}: no splits.json; run `mmface4d data split {store.url}`")
    ids = splits.ids(split)
    if not ids:
        present = sorted(set(splits.sequences.values()))
        raise InputError(
            f"{store.url}: no {split!r} split (it has {', '.join(present) or 'none'}); "
            "re-split it with `mmface4d data split`"
        )
    return ids


@dataclass
class LipPairs:
    """Inner-lip landmark vertices of the store's topology (for the ``loss`` section)."""

    upper: torch.Tensor
    lower: torch.Tensor


def lip_pairs(config: TrainConfig, store: Store, subject: str) -> LipPairs | None:
    """The inner-lip pairs when a lip-sync term is on, else None."""
    if not config.loss.enabled:
        return None
    landmarks = resolve_landmarks(config.loss.landmarks, store.read_template(subject))
    upper, lower = inner_lip_pairs(landmarks)
    return LipPairs(torch.from_numpy(upper), torch.from_numpy(lower))


def batch_loss(
    trainer: torch.nn.Module,
    pipeline: SpeechToFace,
    batch: dict,
    device: torch.device,
    loss: LossConfig | None = None,
    pairs: LipPairs | None = None,
) -> ModelLoss:
    """Forward a dataset batch through the (possibly DDP-wrapped) pipeline and its loss.

    Args:
        trainer: ``pipeline`` or its DDP wrapper (what is called forward).
        pipeline: the unwrapped encoder + model.
        batch: collated :class:`~mmface4d.data.dataset.FaceSample` items: ``audio`` (B, N),
            ``vertices`` (B, L, V, 3), ``template`` (B, V, 3), ``style_vertices`` (B, L, V, 3).
        loss, pairs: the lip-sync terms and the inner-lip vertices (:func:`lip_pairs`); added
            to the model's loss when given.
    """
    rates = batch["fps"]
    fps = float(rates[0])
    if not bool((rates == rates[0]).all()):
        raise InputError(f"a batch mixes frame rates {sorted(set(rates.tolist()))}")
    target = batch["vertices"].to(device, non_blocking=True)
    prediction = trainer(
        batch["audio"].to(device, non_blocking=True),
        fps,
        target.shape[1],
        batch["template"].to(device, non_blocking=True),
        batch["style_vertices"].to(device, non_blocking=True),
        target,
    )
    losses = pipeline.model.loss(prediction, target)
    if loss is None or pairs is None:
        return losses
    extra = lip_sync_loss(loss, prediction, target, pairs.upper.to(device), pairs.lower.to(device))
    total = losses.total + sum(extra.values())
    return ModelLoss(total, {**losses.terms, **{k: v.detach() for k, v in extra.items()}})


def _check_run_folder(output: Path) -> None:
    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: exists and is not a folder")
    if output.is_dir() and any(output.iterdir()) and not (output / CONFIG_NAME).exists():
        raise InputError(f"{output}: a non-empty folder that is not a training run")


def _check_resumable(saved: TrainConfig, config: TrainConfig, path: Path) -> None:
    pairs = {
        "model": (saved.model_name, config.model_name),
        "ablation": (saved.ablation, config.ablation),
        "model config": (dataclasses.asdict(saved.model), dataclasses.asdict(config.model)),
        "encoder": (saved.encoder, config.encoder),
    }
    differ = [name for name, (a, b) in pairs.items() if a != b]
    if differ:
        raise InputError(
            f"{path} was trained with another {', '.join(differ)}; use a new output folder"
        )


def train(
    data: str | os.PathLike[str],
    output: str | os.PathLike[str],
    model: str | None = None,
    ablation: str | None = None,
    config_file: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
) -> TrainResult:
    """Train (or resume training) a registered model on a packed store.

    Args:
        data: the store (folder or fsspec URL) with a ``splits.json``.
        output: the run folder; an existing run in it is resumed.
        model: registered model name (default ``ours``, or the config file's).
        ablation: the model's ablation (ours: ``composite``, ``regional``).
        config_file: JSON or TOML config (e.g. another run's config.json).
        overrides: ``section.key=value`` strings, e.g. ``optim.steps=200``.

    Returns:
        A :class:`TrainResult`.
    """
    ctx = DistContext.from_env()
    config = resolve_config(model, ablation, config_file, overrides)
    output = Path(output)
    _check_run_folder(output)
    device = select_device(config.train.device, ctx)
    own_group = ctx.enabled and not dist.is_initialized()
    if own_group:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        return _train(config, Store(data), output, device, ctx)
    finally:
        if own_group:
            dist.destroy_process_group()


def _dataset(config: TrainConfig, store: Store) -> FaceSequenceDataset:
    """The training split's windows (one topology)."""
    require_split(store, config.data.split)
    dataset = FaceSequenceDataset(
        store, config.data.split, config.data.window, config.train.seed, augment=config.augment
    )
    counts = {r.num_vertices for r in dataset.records}
    if len(counts) != 1:
        raise InputError(f"{store.url}: sequences of several vertex counts {sorted(counts)}")
    return dataset


def _resume_state(config: TrainConfig, output: Path, ctx: DistContext) -> dict[str, Any] | None:
    """The run's checkpoint when it has one (checked against ``config``); a final.pt that more
    steps will replace is removed."""
    checkpoint_path, final_path = output / CHECKPOINT_NAME, output / FINAL_NAME
    if not checkpoint_path.exists():
        return None
    state = load_checkpoint(checkpoint_path)
    _check_resumable(config_from_dict(state["config"], str(checkpoint_path)), config, output)
    if state["step"] > config.optim.steps:
        raise InputError(
            f"{checkpoint_path} is at step {state['step']}, beyond optim.steps="
            f"{config.optim.steps}; ask for more steps or use a new folder"
        )
    if ctx.is_main and final_path.exists() and state["step"] < config.optim.steps:
        final_path.unlink()  # training goes on: the old final.pt is no longer the run's result
    return state


def _loader(
    config: TrainConfig,
    dataset: FaceSequenceDataset,
    store: Store,
    device: torch.device,
    ctx: DistContext,
) -> tuple[DataLoader, ResumableSampler]:
    """This process's shard of the shuffled windows, in batches; the sampler resumes
    mid-epoch."""
    seed, batch_size = config.train.seed, config.data.batch_size
    sampler = ResumableSampler(
        dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed, drop_last=True
    )
    if sampler.num_samples // batch_size == 0:
        raise InputError(
            f"{store.url}: split {config.data.split!r} has {len(dataset)} sequences of at least "
            f"{config.data.window} frames, fewer than data.batch_size={batch_size} "
            f"x {ctx.world_size} processes"
        )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=config.data.workers,
        drop_last=True,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed),
    )
    return loader, sampler


def _train(
    config: TrainConfig, store: Store, output: Path, device: torch.device, ctx: DistContext
) -> TrainResult:
    """The recipe: data, model and forwarder, then the generic :class:`Trainer`."""
    dataset = _dataset(config, store)
    seed_everything(config.train.seed)
    pipeline = build_pipeline(config, dataset.records[0].num_vertices)
    pairs = lip_pairs(config, store, dataset.records[0].subject)
    forward = functools.partial(batch_loss, loss=config.loss, pairs=pairs)
    state = _resume_state(config, output, ctx)
    trainer = Trainer(pipeline, config, forward, output, device, ctx)
    trainer.restore(state)
    loader, sampler = _loader(config, dataset, store, device, ctx)
    trainer.run(loader, sampler, dataset)
    return TrainResult(
        run=output,
        model=config.model_name,
        ablation=config.ablation,
        start_step=trainer.start_step,
        steps=trainer.step_count,
        final_loss=trainer.last_loss,
        seconds=trainer.seconds,
        checkpoint=trainer.checkpoint_path,
        final=trainer.final_path,
        log=output / LOG_NAME,
        world_size=ctx.world_size,
        device=str(device),
        tensorboard=trainer.board is not None,
    )
