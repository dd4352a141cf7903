"""The one settings surface of the configurable verbs (``train``, ``reconstruct``).

:func:`add_config_verb` creates the verb's parser with ``--config FILE|PRESET`` (a JSON/TOML
file or a preset of ``configs/<verb>/``), ``--set KEY=VALUE`` (repeatable, applied after the
file), ``--print-config [toml|json]`` (print the resolved settings and exit 0) and a ``--help``
that lists every key with its type, default and meaning, generated from the config dataclasses'
field docs (:func:`mmface4d.settings.describe_keys`) when help is asked for. A positional
``key=value`` is refused with a hint to use ``--set`` (:func:`reject_unrecognized`).
"""

from __future__ import annotations

import argparse
import functools
import json
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mmface4d.errors import InputError
from mmface4d.settings import preset_names, to_toml

PRINT_FORMATS = ("toml", "json")


@dataclass(frozen=True)
class ConfigSurface:
    """What a configurable verb tells :func:`add_config_verb`.

    Attributes:
        kind: the verb's presets folder, ``configs/<kind>/`` (``train``, ``reconstruct``).
        resolve: parsed arguments -> the resolved config (defaults, ``--config``, ``--set``
            and any option of the verb that is part of it, such as ``--model``).
        as_dict: a resolved config -> its plain nested values (what ``--print-config`` prints
            and a ``--config`` file holds).
        keys_help: -> the key list shown by ``--help`` (called only when help is shown).
        example: a ``--set`` value for the option's help, e.g. ``optim.steps=200``.
    """

    kind: str
    resolve: Callable[[argparse.Namespace], Any]
    as_dict: Callable[[Any], dict[str, Any]]
    keys_help: Callable[[], str]
    example: str


class _HelpWithKeys(argparse.Action):
    """``-h/--help``: the usual help with the settings keys as its epilog, built on demand (the
    key list imports the config modules, which a verb's parser does not need otherwise)."""

    def __init__(self, option_strings: Sequence[str], epilog: Callable[[], str], **kwargs: Any):
        kwargs.update(dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0)
        super().__init__(option_strings, **kwargs)
        self.epilog = epilog

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        parser.epilog = self.epilog()
        parser.print_help()
        parser.exit()


def add_config_verb(
    verbs: argparse._SubParsersAction,
    name: str,
    surface: ConfigSurface,
    run: Callable[[argparse.Namespace, Any], Any],
    *,
    required: Sequence[str] = (),
    **parser_kwargs: Any,
) -> argparse.ArgumentParser:
    """Add a configurable verb: its parser with the settings options; the verb adds its own.

    Args:
        verbs: the subparsers of ``mmface4d``.
        name: the verb.
        surface: its config.
        run: ``(arguments, resolved config) -> status or None``, the verb's work.
        required: destinations of the verb's arguments that are required unless
            ``--print-config`` is given (declare those arguments optional to argparse).
        **parser_kwargs: ``help``, ``description`` (kept as written: wrap it by hand) ...

    Returns:
        The verb's parser.
    """
    parser = verbs.add_parser(
        name, add_help=False, formatter_class=argparse.RawDescriptionHelpFormatter, **parser_kwargs
    )
    presets = preset_names(surface.kind)
    parser.add_argument(
        "-h",
        "--help",
        action=_HelpWithKeys,
        epilog=functools.partial(_epilog, surface, presets),
        help="show this help, with every settings key, and exit",
    )
    parser.add_argument(
        "--config",
        metavar="FILE|PRESET",
        help="settings from a JSON/TOML file (e.g. a saved config) or a preset: "
        + (", ".join(presets) or "none installed"),
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"change one setting after --config (repeatable), e.g. --set {surface.example}",
    )
    parser.add_argument(
        "--print-config",
        nargs="?",
        const=PRINT_FORMATS[0],
        choices=PRINT_FORMATS,
        metavar="toml|json",
        help="print the resolved settings (default TOML, loadable with --config) and exit",
    )
    verb = functools.partial(_run, parser, surface, run, tuple(required))
    parser.set_defaults(run=verb, config_verb=True)
    return parser


def _epilog(surface: ConfigSurface, presets: Sequence[str]) -> str:
    names = ", ".join(presets) or "none installed"
    head = f"settings (--config FILE|PRESET, then --set KEY=VALUE; presets: {names}):"
    return "\n".join([*textwrap.wrap(head, 79, subsequent_indent="  "), surface.keys_help()])


def _label(parser: argparse.ArgumentParser, dest: str) -> str:
    for action in parser._actions:
        if action.dest == dest:
            return "/".join(action.option_strings) or str(action.metavar or dest)
    return dest


def _run(
    parser: argparse.ArgumentParser,
    surface: ConfigSurface,
    run: Callable[[argparse.Namespace, Any], Any],
    required: Sequence[str],
    args: argparse.Namespace,
) -> Any:
    config = surface.resolve(args)  # the settings first: their mistakes show without inputs
    if args.print_config:
        values = surface.as_dict(config)
        text = to_toml(values) if args.print_config == "toml" else json.dumps(values, indent=2)
        print(text.rstrip("\n"))
        return 0
    missing = [_label(parser, dest) for dest in required if getattr(args, dest) is None]
    if missing:
        raise InputError(f"the following arguments are required: {', '.join(missing)}")
    return run(args, config)


def reject_unrecognized(
    parser: argparse.ArgumentParser, args: argparse.Namespace, extra: Sequence[str]
) -> None:
    """Refuse arguments no verb option took: a configurable verb's positional ``key=value``
    is an :class:`InputError` naming ``--set``; anything else is argparse's usual error."""
    if not extra:
        return
    settings = [item for item in extra if "=" in item and not item.startswith("-")]
    if settings and getattr(args, "config_verb", False):
        fix = " ".join(f"--set {item}" for item in settings)
        raise InputError(f"unexpected {' '.join(settings)}: settings are given with --set ({fix})")
    parser.error(f"unrecognized arguments: {' '.join(extra)}")
