import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_serve_with_unknown_model_exits_with_a_message(tmp_path):
    proc = subprocess.run([str(BIN / "farol-bridge"), "serve", "--model", str(tmp_path / "nope")],
                          input="", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout == ""  # no protocol line: the bot sees the exit code and stderr
    assert "error: Model not found" in proc.stderr and "Traceback" not in proc.stderr
