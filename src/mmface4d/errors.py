"""The project's user-facing error type.

Every mistake a user can make (a missing file, a wrong shape, an unknown name) raises
:class:`InputError` with one line that names the file or argument and what was expected. The CLI
prints that line and exits non-zero, without a traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input: a file, argument or array that is not what was expected."""
