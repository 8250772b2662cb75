"""The one exception type Farol's command-line tools turn into a clear message."""

import functools
import sys


class FarolError(Exception):
    """A problem the user can fix: the message says what, the hint says how."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


def exit_on_error(fn):
    """Decorate a CLI command: a FarolError becomes `error: ...` on stderr and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FarolError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)

    return wrapper
