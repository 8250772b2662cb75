import pytest
from farol_core.errors import FarolError, Interrupted, exit_on_error


def _raising(exc):
    @exit_on_error
    def command():
        raise exc
    return command


@pytest.mark.parametrize(("exc", "code", "line"), [
    (FarolError("bad data", hint="fix it"), 1, "error: bad data\n  hint: fix it"),
    (KeyboardInterrupt(), 130, "interrupted"),
    (Interrupted("stopped while loading"), 130, "interrupted: stopped while loading"),
], ids=["FarolError", "Ctrl+C", "Interrupted"])
def test_cli_errors_become_one_message_and_an_exit_status(exc, code, line, capsys):
    with pytest.raises(SystemExit) as e:
        _raising(exc)()
    assert e.value.code == code
    assert capsys.readouterr().err.strip() == line
