"""`farol-bridge` and `farol-ask`: parse options and call farol_bridge's public functions."""

import json
import sys

import click
from farol_core.errors import FarolError, exit_on_error

from farol_bridge.ask import ask
from farol_bridge.protocol import clean_text
from farol_bridge.server import Bridge, protocol_stdout, serve

SYSTEM_HELP = ("System message put before every conversation that has none; give the data "
               "config's system_prompt when the model was trained with one.")


@click.group()
def main():
    """Serve a model to other programs over stdin/stdout."""


@main.command("serve")
@click.option("--model", required=True, envvar="FAROL_MODEL", help="Model folder (MLX layout).")
@click.option("--adapter-path", default=None, envvar="FAROL_ADAPTER", help="Adapter folder.")
@click.option("--max-prompt-tokens", type=click.IntRange(min=1), default=None)
@click.option("--max-tokens-cap", type=click.IntRange(min=1), default=None)
@click.option("--system-prompt", default=None, envvar="FAROL_SYSTEM_PROMPT", help=SYSTEM_HELP)
@exit_on_error
def serve_cmd(model, adapter_path, max_prompt_tokens, max_tokens_cap, system_prompt):
    """Load the model once, then answer one JSON request per stdin line."""
    with protocol_stdout() as out:
        bridge = _load(model, adapter_path, max_prompt_tokens=max_prompt_tokens,
                       max_tokens_cap=max_tokens_cap, system_prompt=system_prompt)
        status = serve(bridge, sys.stdin.buffer, out)
    sys.exit(status)


def _load(model, adapter_path, **limits) -> Bridge:
    """The loaded Bridge; any load failure becomes one `error:` line on stderr and exit 1."""
    try:
        return Bridge(model, adapter_path, **limits)
    except FarolError:
        raise
    except Exception as e:  # a corrupt model (say, a half-downloaded file): no traceback
        raise FarolError(f"Could not load {model}: {type(e).__name__}: {e}") from None


@click.command()
@click.argument("question")
@click.option("--model", required=True, envvar="FAROL_MODEL", help="Model folder (MLX layout).")
@click.option("--adapter-path", default=None, envvar="FAROL_ADAPTER", help="Adapter folder.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None)
@click.option("--temperature", type=click.FloatRange(min=0), default=None)
@click.option("--system-prompt", default=None, envvar="FAROL_SYSTEM_PROMPT", help=SYSTEM_HELP)
def ask_main(question, model, adapter_path, max_tokens, temperature, system_prompt):
    """Answer QUESTION and print {"prompt", "response", "status"} as JSON."""
    question = clean_text(question)  # argv bytes that are not UTF-8 arrive as lone surrogates
    with protocol_stdout() as out:
        try:
            answer = ask(question, model, adapter_path, max_tokens, temperature,
                         system_prompt)
            reply = {"prompt": question, "response": answer.text, "status": "success"}
        except Exception as e:  # the bot parses stdout: every failure must still be JSON
            reply = {"prompt": question, "status": "error", "error": str(e)}
        out.write(json.dumps(reply, ensure_ascii=False) + "\n")
        out.flush()
    sys.exit(0 if reply["status"] == "success" else 1)
