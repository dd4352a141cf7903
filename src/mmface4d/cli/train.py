"""``mmface4d train``: train a speech-to-face model (resumable; DDP under torchrun)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os


def _train(args: argparse.Namespace) -> None:
    from mmface4d.animate.train import train

    if args.print_config:
        from mmface4d.animate.config import config_to_dict, resolve_config

        config = resolve_config(args.model, args.ablation, args.config, args.overrides)
        print(json.dumps(config_to_dict(config), indent=2))
        return

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
    p = verbs.add_parser(
        "train",
        help="train a speech-to-face model on a packed store (resumes; DDP under torchrun)",
        description="Train a registered model. Re-running the same command resumes from "
        "RUN/checkpoint.pt. Settings: --config FILE and section.key=value overrides, e.g. "
        "model.latent_dim=128 optim.lr=3e-4 optim.steps=200 data.window=32 "
        "encoder.spec=hubert:path=DIR train.device=cpu.",
    )
    p.add_argument("--model", help="registered model (default ours)")
    p.add_argument("--ablation", help="ablation of the model (ours: composite or regional)")
    p.add_argument("--data", required=True, help="packed store with splits.json")
    p.add_argument("-o", "--output", required=True, help="run folder (an existing run resumes)")
    p.add_argument("--config", help="JSON or TOML config file (e.g. another run's config.json)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.set_defaults(run=_train)
