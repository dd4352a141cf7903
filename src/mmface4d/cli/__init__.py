"""``mmface4d <verb>``: the command line. Each verb parses arguments and calls one library
function of the same name; a user mistake prints one line and exits with status 2. The verbs
with settings (``train``, ``reconstruct``) get ``--config``, ``--set`` and ``--print-config``
from one helper, :mod:`mmface4d.cli.config`."""

from __future__ import annotations

import argparse
import gc
import sys
import warnings
from collections.abc import Sequence

from mmface4d import __version__
from mmface4d.errors import InputError

# Each module registers its verbs: add_parsers(subparsers) -> None, with set_defaults(run=...).
# Add a module on its own line.
_VERB_MODULES = (
    "mmface4d.cli.facemodel",
    "mmface4d.cli.nut",
    "mmface4d.cli.demo",
    "mmface4d.cli.synth",
    "mmface4d.cli.video",
    "mmface4d.cli.data",
    "mmface4d.cli.train",
    "mmface4d.cli.evaluate",
    "mmface4d.cli.animate",
    "mmface4d.cli.character",
    "mmface4d.cli.capture",
    "mmface4d.cli.reconstruct",
    "mmface4d.cli.serve",
)


#: True while :func:`main` runs the command line of its own process (``argv`` None), not a call
#: from Python (tests, notebooks): only then may a verb treat its imports as permanent.
_OWN_PROCESS = False


def freeze_imports() -> None:
    """After a short verb's heavy imports: hide every object created so far from the garbage
    collector (``gc.freeze``), when this process runs one command line. Importing torch and the
    library leaves ~170k long-lived objects that every full collection would scan again (about
    0.5-1 s of a 1 s ``animate``); they live until the process exits anyway. Calls from Python
    are left alone."""
    if _OWN_PROCESS:
        gc.freeze()


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="mmface4d",
        description="Multi-modal 4D faces: capture, reconstruction, datasets, speech-driven "
        "3D face animation and delivery.",
    )
    parser.add_argument("--version", action="version", version=f"mmface4d {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name in _VERB_MODULES:
        importlib.import_module(name).add_parsers(verbs)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Library warnings (e.g. silent audio) as one ``mmface4d: warning: ...`` line."""
    print(f"mmface4d: warning: {message}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    global _OWN_PROCESS
    _OWN_PROCESS = argv is None
    warnings.showwarning = _one_line_warning
    from mmface4d.cli.config import reject_unrecognized

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        reject_unrecognized(parser, args, extra)  # a positional key=value: use --set
        code = args.run(args)  # a verb may return a non-zero status (e.g. failed batch jobs)
    except InputError as exc:
        print(f"mmface4d: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        print(f"mmface4d: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"mmface4d: error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("mmface4d: interrupted", file=sys.stderr)
        return 130
    # a verb returns None (or whatever its library call gave) on success, an int status to
    # report a partial failure
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


if __name__ == "__main__":
    sys.exit(main())
