"""The one exception type Farol's command-line tools turn into a clear message."""

import errno
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


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # a full disk, or a full quota on a shared one


def disk_full(error: OSError) -> FarolError | None:
    """The one clear message for a write that found the disk full, or None for any other
    OSError. Every writer keeps the old file until the new one is whole, so nothing is lost."""
    if error.errno not in DISK_FULL:
        return None
    where = f" writing {error.filename}" if error.filename else ""
    return FarolError(f"no space left on the disk{where}",
                      hint="free disk space, then run the same command again; files and "
                           "checkpoints written before are intact")


def exit_on_error(fn):
    """Decorate a CLI command: a FarolError or a full disk becomes `error: ...` on stderr and
    exit status 1, and Ctrl+C becomes one line and status 130 instead of a traceback."""

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
        except OSError as e:  # any write of any command can meet a full disk
            full = disk_full(e)
            if full is None:
                raise
            print(f"error: {full}", file=sys.stderr)
            sys.exit(full.exit_code)

    return wrapper
