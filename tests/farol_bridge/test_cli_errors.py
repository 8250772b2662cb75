import json
import os
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


def run(args, env=None, stdin=""):
    return subprocess.run([str(BIN / args[0]), *args[1:]], input=stdin, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_ask_usage_errors_exit_2_with_clicks_text_and_nothing_on_stdout():
    for args in (["farol-ask", "Olá?"], ["farol-ask"], ["farol-ask", "x", "--max-tokens", "x"]):
        proc = run(args, env={"FAROL_MODEL": ""})
        assert (proc.returncode, proc.stdout) == (2, ""), (args, proc)
        assert "Usage: farol-ask" in proc.stderr and "Error:" in proc.stderr


def test_ask_and_serve_read_model_adapter_and_system_prompt_from_the_environment(tiny_4bit):
    # The old bot pattern, spawn('farol-ask', [question]), with the model in the environment.
    env = {"FAROL_MODEL": str(tiny_4bit), "FAROL_ADAPTER": ""}
    plain = json.loads(run(["farol-ask", "Olá", "--max-tokens", "2"], env).stdout)
    assert plain["status"] == "success"
    lines = ('{"id": 1, "op": "info"}\n'
             '{"id": 2, "op": "generate", "prompt": "Olá", "max_tokens": 1}\n')
    served = [json.loads(x) for x in run(["farol-bridge", "serve"], env, lines).stdout.split("\n")
              if x]
    assert served[0]["model"] == str(tiny_4bit)
    with_system = [json.loads(x) for x in run(["farol-bridge", "serve"], {
        **env, "FAROL_SYSTEM_PROMPT": "Responde sempre em português de Portugal."}, lines
    ).stdout.split("\n") if x]
    tokens = [{r["id"]: r for r in out if "usage" in r}[2]["usage"]["prompt_tokens"]
              for out in (served, with_system)]
    assert tokens[1] > tokens[0]
    missing = run(["farol-bridge", "serve"], {**env, "FAROL_ADAPTER": "/nope/adapter"})
    assert missing.returncode == 1 and "/nope/adapter" in missing.stderr
