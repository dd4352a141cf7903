"""``mmface4d train``: train a speech-to-face model (resumable; DDP under torchrun)."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import textwrap
from typing import Any

from mmface4d.cli.config import ConfigSurface, add_config_verb

_DESCRIPTION = """\
Train a registered model on a packed store. Re-running the same command resumes from
RUN/checkpoint.pt. Settings, lowest precedence first: the model's defaults, --config (a file,
e.g. another run's config.json, or a preset such as table2_ours), --ablation, then --set, e.g.
  --set model.latent_dim=128 --set optim.lr=3e-4 --set optim.steps=200 --set data.window=32
  --set encoder.spec=hubert:path=DIR --set train.device=cpu"""


def _resolve(args: argparse.Namespace) -> Any:
    from mmface4d.animate.config import resolve_config

    return resolve_config(args.model, args.ablation, args.config, args.overrides)


def _as_dict(config: Any) -> dict[str, Any]:
    from mmface4d.animate.config import config_to_dict

    return config_to_dict(config)


def _keys_help() -> str:
    """The shared keys, then every registered model with its ablations and ``model.*`` keys."""
    from mmface4d.animate.config import DEFAULT_MODEL, TrainConfig
    from mmface4d.animate.registry import get_model, model_names
    from mmface4d.settings import describe_keys, format_value, keys_help

    wrap = functools.partial(textwrap.wrap, width=79, break_on_hyphens=False)
    shared = describe_keys(TrainConfig(), skip=("model_name", "ablation", "model"))
    lines = [keys_help(shared), "", f"models (--model NAME, default {DEFAULT_MODEL}):"]
    for name in model_names():
        entry = get_model(name)
        lines += wrap(f"{name}: {entry.summary}", initial_indent="  ", subsequent_indent="      ")
        ablations = [
            f"{ablation} ({', '.join(f'model.{k}={format_value(v)}' for k, v in changes.items())})"
            for ablation, changes in entry.ablations.items()
        ]
        ablation_line = f"--ablation: {', '.join(ablations) or 'none'}"
        lines += wrap(ablation_line, initial_indent="    ", subsequent_indent="      ")
        lines.append(keys_help(describe_keys(entry.config_type(), prefix="model."), indent=4))
    return "\n".join(lines)


def _train(args: argparse.Namespace, config: Any) -> None:
    from mmface4d.animate.train import train

    # train() resolves the same settings from the same arguments (``config`` is checked)
    result = train(
        args.data,
        args.output,
        model=args.model,
        ablation=args.ablation,
        config_file=args.config,
        overrides=args.overrides,
    )
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(json.dumps(dataclasses.asdict(result), indent=2, default=str))


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    surface = ConfigSurface("train", _resolve, _as_dict, _keys_help, example="optim.steps=200")
    p = add_config_verb(
        verbs,
        "train",
        surface,
        _train,
        required=("data", "output"),
        help="train a speech-to-face model on a packed store (resumes; DDP under torchrun)",
        description=_DESCRIPTION,
    )
    p.add_argument("--model", help="registered model (default ours; listed below)")
    p.add_argument("--ablation", help="ablation of the model (listed below)")
    p.add_argument("--data", help="packed store with splits.json (required)")
    p.add_argument("-o", "--output", help="run folder, an existing run resumes (required)")
