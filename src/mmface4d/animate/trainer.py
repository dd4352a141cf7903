"""The generic trainer: optimisation of a speech-to-face pipeline in short named steps.

A :class:`Trainer` knows nothing about a model or its data beyond a *forwarder* (MeshTalk's
split): a function that takes the (possibly DDP-wrapped) pipeline and one batch and returns the
model's :class:`~mmface4d.animate.interface.ModelLoss`
(:func:`mmface4d.animate.train.batch_loss`). Its steps, in the order a session runs them:

- :meth:`Trainer.restore`: weights, optimizer, loss scaler, step, elapsed time and every
  process's RNG state from ``RUN/checkpoint.pt`` (or the seeds of a fresh run);
- :meth:`Trainer.run`: the loop over epochs, resuming mid-epoch, until ``optim.steps``; then
  ``RUN/final.pt``;
- :meth:`Trainer.step`: one optimisation step (forward, backward, clipping, update);
- :meth:`Trainer.log`: every ``train.log_every`` steps, the interval's mean loss and terms over
  all processes to ``RUN/log.csv`` (and TensorBoard);
- :meth:`Trainer.checkpoint`: every ``train.checkpoint_every`` steps, the full state.

Under ``torchrun`` the pipeline is wrapped in DDP and only rank 0 writes files; a loss that stops
being finite stops every process at the next synchronisation, before a checkpoint could keep it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from mmface4d.animate.checkpoint import (
    CHECKPOINT_NAME,
    FINAL_NAME,
    SpeechToFace,
    final_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from mmface4d.animate.config import TrainConfig, save_config
from mmface4d.animate.distributed import DistContext, ResumableSampler, reduce_means
from mmface4d.animate.interface import ModelLoss
from mmface4d.animate.runlog import CsvLog, tensorboard_writer

LOG_NAME = "log.csv"
CONFIG_NAME = "config.json"

#: ``(model, pipeline, batch, device) -> ModelLoss``: ``model`` is what is called forward (the
#: pipeline or its DDP wrapper), ``pipeline`` the unwrapped encoder + model.
Forwarder = Callable[[torch.nn.Module, SpeechToFace, dict, torch.device], ModelLoss]


def seed_everything(seed: int) -> None:
    """Seed python's and torch's global generators (the model init, dropout)."""
    random.seed(seed)
    torch.manual_seed(seed)


def _check_finite(ok: bool, step: int) -> None:
    if not ok:
        raise FloatingPointError(
            f"the loss stopped being finite by step {step}; {CHECKPOINT_NAME} keeps the last "
            "good state (try a lower optim.lr)"
        )


@dataclass
class Interval:
    """The losses summed since the last log row.

    Attributes:
        sums: name (``loss`` and the model's terms) -> sum over the interval's steps.
        count: steps in the interval.
        finite: whether every loss of this process was finite so far (also across intervals).
    """

    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0
    finite: bool = True

    def add(self, value: float, terms: dict[str, torch.Tensor]) -> None:
        self.finite = self.finite and math.isfinite(value)
        self.count += 1
        for name, term in {"loss": value, **terms}.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(term)


class Trainer:
    """Trains ``pipeline`` with Adam (see the module doc for the steps).

    Args:
        pipeline: encoder + model, on the CPU as built (the trainer moves it to ``device``).
        config: the run's configuration (``optim``, ``train`` and ``data.batch_size`` are used).
        forward: the model forwarder.
        output: the run folder.
        device: this process's device.
        ctx: this process's place in a torchrun job.

    Attributes:
        model: what is called forward: the pipeline, or its DDP wrapper after :meth:`restore`.
        step_count: optimisation steps done (over all sessions of the run).
        start_step: the step this session started from (0, or the checkpoint's).
        interval: the losses since the last log row.
        last_loss: the mean loss of the last logged interval (NaN before the first).
        board: the TensorBoard writer on rank 0, or None.
    """

    def __init__(
        self,
        pipeline: SpeechToFace,
        config: TrainConfig,
        forward: Forwarder,
        output: Path,
        device: torch.device,
        ctx: DistContext,
    ) -> None:
        self.pipeline, self.config, self.forward = pipeline.to(device), config, forward
        self.output, self.device, self.ctx = output, device, ctx
        if config.train.amp and device.type == "cuda":
            bf16 = torch.cuda.is_bf16_supported()
            pipeline.amp_dtype = torch.bfloat16 if bf16 else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=pipeline.amp_dtype == torch.float16)
        self.parameters = [p for p in pipeline.parameters() if p.requires_grad]
        o = config.optim
        self.optimizer = torch.optim.Adam(
            self.parameters, lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay
        )
        self.model: torch.nn.Module = pipeline
        self.step_count, self.start_step, self.elapsed = 0, 0, 0.0
        self.started = time.perf_counter()
        self.interval = Interval()
        self.last_loss = math.nan
        self.log_file: CsvLog | None = None
        self.board: Any = None
        self.bar: Any = None

    @property
    def checkpoint_path(self) -> Path:
        return self.output / CHECKPOINT_NAME

    @property
    def final_path(self) -> Path:
        return self.output / FINAL_NAME

    @property
    def seconds(self) -> float:
        """Training time over all sessions of the run."""
        return time.perf_counter() - self.started

    # ------------------------------------------------------------------ restore

    def restore(self, state: dict[str, Any] | None) -> None:
        """Continue from a loaded checkpoint, or give each process of a fresh run its dropout
        stream (same initial weights everywhere)."""
        seed, ctx = self.config.train.seed, self.ctx
        if state is None:
            if ctx.rank:
                torch.manual_seed(seed + ctx.rank)
        else:
            self.pipeline.model.load_state_dict(state["model"])
            if state.get("encoder") is not None:
                self.pipeline.encoder.load_state_dict(state["encoder"])
            self.optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.step_count, self.elapsed = int(state["step"]), float(state["seconds"])
            if len(state["rng"]) == ctx.world_size:
                set_rng_state(state["rng"][ctx.rank])
            else:  # another world size: fresh, distinct streams
                seed_everything(seed + 7919 * (ctx.rank + 1) + self.step_count)
        self.start_step = self.step_count
        if ctx.enabled:
            self.model = DistributedDataParallel(
                self.pipeline,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
            )

    # ------------------------------------------------------------------ step

    def step(self, batch: dict) -> None:
        """One optimisation step on ``batch``."""
        losses = self.forward(self.model, self.pipeline, batch, self.device)
        value = float(losses.total.detach())
        self.interval.add(value, losses.terms)
        if not self.ctx.enabled:  # under DDP every rank stops together, at the next sync
            _check_finite(self.interval.finite, self.step_count + 1)
        self.scaler.scale(losses.total).backward()
        if self.config.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.parameters, self.config.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step_count += 1
        self.bar.update(1)

    # ------------------------------------------------------------------ log

    def log(self) -> None:
        """A log row of the interval's means over all processes (rank 0 writes it)."""
        interval = self.interval
        means = reduce_means(interval.sums, interval.count, self.ctx, self.device)
        _check_finite(math.isfinite(means["loss"]), self.step_count)
        self.last_loss = means.pop("loss")
        row = {"step": self.step_count, "loss": self.last_loss}
        row |= {"lr": self.optimizer.param_groups[0]["lr"], "seconds": self.seconds, **means}
        if self.log_file is not None:
            self.log_file.write(row)
            self.bar.set_postfix(loss=f"{self.last_loss:.3g}")
        if self.board is not None:
            for name in ("loss", "lr", *means):
                self.board.add_scalar(f"train/{name}", row[name], self.step_count)
        self.interval = Interval(finite=interval.finite)

    # ------------------------------------------------------------------ checkpoint

    def checkpoint(self) -> None:
        """The full training state to ``RUN/checkpoint.pt``, with every process's RNG state;
        refused (FloatingPointError) when any process saw a non-finite loss."""
        local = (rng_state(), self.interval.finite)
        rngs = [local]
        if self.ctx.enabled:
            rngs = [None] * self.ctx.world_size
            dist.all_gather_object(rngs, local)
        _check_finite(all(ok for _, ok in rngs), self.step_count)
        if not self.ctx.is_main:
            return
        training = {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "seconds": self.seconds,
            "rng": [rng for rng, _ in rngs],
            "world_size": self.ctx.world_size,
        }
        state = final_state(self.pipeline, self.config, self.step_count) | training
        save_checkpoint(self.checkpoint_path, state)

    # ------------------------------------------------------------------ run

    def _open_logs(self) -> None:
        """TensorBoard first (a missing package stops the run before anything is written), then
        the run folder with its config.json and log.csv (rank 0), and the progress bar."""
        main, train = self.ctx.is_main, self.config.train
        if main:
            self.board = tensorboard_writer(
                train.tensorboard, self.output / "tensorboard", self.step_count
            )
            self.output.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.output / CONFIG_NAME)
            self.log_file = CsvLog(self.output / LOG_NAME, self.step_count)
        self.bar = tqdm(
            total=self.config.optim.steps,
            initial=self.step_count,
            desc="train",
            unit="step",
            disable=not (main and train.progress),
        )

    def _close_logs(self) -> None:
        self.bar.close()
        if self.board is not None:
            self.board.close()

    def _epoch(self, loader: Iterable[dict]) -> bool:
        """Steps over one (possibly resumed) epoch; True when ``optim.steps`` is reached."""
        steps, train = self.config.optim.steps, self.config.train
        for batch in loader:
            self.step(batch)
            last = self.step_count == steps
            if self.step_count % train.log_every == 0 or last:
                self.log()
            if self.step_count % train.checkpoint_every == 0 or last:
                self.checkpoint()
            if self.step_count >= steps:
                return True
        return False

    def run(self, loader: Iterable[dict], sampler: ResumableSampler, dataset: Any) -> None:
        """Train until ``optim.steps``, then write ``RUN/final.pt``.

        Args:
            loader: batches in the sampler's order.
            sampler: the (distributed, resumable) sampler of ``loader``.
            dataset: its dataset (``set_epoch`` draws each epoch's windows).
        """
        batch_size = self.config.data.batch_size
        per_epoch = sampler.num_samples // batch_size
        self._open_logs()
        self.started = time.perf_counter() - self.elapsed
        epoch, offset = divmod(self.step_count, per_epoch)
        self.model.train()
        try:
            while self.step_count < self.config.optim.steps:
                sampler.set_epoch(epoch)
                dataset.set_epoch(epoch)
                sampler.skip = offset * batch_size
                if self._epoch(loader):
                    break
                epoch, offset = epoch + 1, 0
            if self.ctx.is_main:
                save_checkpoint(
                    self.final_path, final_state(self.pipeline, self.config, self.step_count)
                )
        finally:
            self._close_logs()
