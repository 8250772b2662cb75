import json
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


def test_serve_with_a_corrupt_model_exits_with_one_line_not_a_traceback(tiny_4bit, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_4bit.iterdir():
        (broken / f.name).write_bytes(f.read_bytes()[:1000] if f.suffix == ".safetensors"
                                      else f.read_bytes())  # weights cut short
    proc = subprocess.run([str(BIN / "farol-bridge"), "serve", "--model", str(broken)],
                          input="", capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert f"error: Could not load {broken}" in proc.stderr and "Traceback" not in proc.stderr


def test_ask_with_a_blank_question_is_an_error_line(tiny_4bit):
    # The bridge answers a blank prompt with bad_request; farol-ask must not generate from it.
    import json

    proc = subprocess.run([str(BIN / "farol-ask"), "   ", "--model", str(tiny_4bit)],
                          capture_output=True, text=True, timeout=120)
    reply = json.loads(proc.stdout)
    assert proc.returncode == 1 and reply["status"] == "error"
    assert reply["error"] == "the question is empty"


def test_ask_with_a_question_that_is_not_utf8_still_prints_json(tiny_4bit):
    # Latin-1 bytes in a UTF-8 locale's argv become lone surrogates, which the UTF-8 stdout
    # refused: a traceback and an empty stdout, where the bot parses JSON.
    import json
    import os

    proc = subprocess.run([str(BIN / "farol-ask"), "Faro ação".encode("latin-1"), "--model",
                           str(tiny_4bit), "--max-tokens", "2"], capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONUTF8": "1"})
    reply = json.loads(proc.stdout)
    assert proc.returncode == 0 and reply["status"] == "success", proc.stderr
    assert reply["prompt"] == "Faro a\ufffd\ufffdo"


def test_serve_and_ask_take_the_system_prompt_the_model_was_trained_with(tiny_4bit):
    # A data config's system_prompt is in every training record; before, the CLIs had no way
    # to serve it, so a model trained with one was always asked without it.
    lines = [json.dumps({"id": i, "op": "generate", "prompt": "Quem?", "max_tokens": 1})
             for i in (1, 2)] + [json.dumps({"id": 3, "op": "info"})]
    tokens = {}
    for system in (None, "Responde em português de Portugal."):
        args = ["--system-prompt", system] if system else []
        proc = subprocess.run([str(BIN / "farol-bridge"), "serve", "--model", str(tiny_4bit),
                               *args], input="\n".join(lines) + "\n", capture_output=True,
                              text=True, timeout=120)
        replies = {r.get("id"): r for r in map(json.loads, proc.stdout.splitlines())}
        assert replies[3]["limits"]["system_prompt"] == system
        tokens[system] = replies[1]["usage"]["prompt_tokens"]
    assert tokens["Responde em português de Portugal."] > tokens[None]
    ask = subprocess.run([str(BIN / "farol-ask"), "Quem?", "--model", str(tiny_4bit),
                          "--max-tokens", "1", "--system-prompt", "Sê breve."],
                         capture_output=True, text=True, timeout=120)
    assert ask.returncode == 0 and json.loads(ask.stdout)["status"] == "success"
