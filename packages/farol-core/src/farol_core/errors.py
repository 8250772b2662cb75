"""The one exception type Farol's command-line tools turn into a clear message."""

import functools
import sys

INTERRUPTED_EXIT = 130  # the shell's convention for a process stopped by Ctrl+C (128 + SIGINT)


class FarolError(Exception):
    """A problem the user can fix: the message says what, the hint says how."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class Interrupted(FarolError):
    """Ctrl+C arrived where there was nothing to save; the message says what is left as it was."""

    exit_code = INTERRUPTED_EXIT


def exit_on_error(fn):
    """Decorate a CLI command: a FarolError becomes `error: ...` on stderr and exit status 1,
    and Ctrl+C becomes one line and status 130 instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Interrupted as e:
            print(f"interrupted: {e}", file=sys.stderr)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(INTERRUPTED_EXIT)
        except FarolError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(e.exit_code)

    return wrapper
