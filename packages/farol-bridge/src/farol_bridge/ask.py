"""One question, one answer: what the bot's old `inference.py` did, without its pitfalls."""

from farol_core.config import load_config
from farol_core.errors import FarolError
from farol_core.generate import Completion, complete
from farol_core.model import load_model


def ask(question: str, model: str, adapter: str | None = None, max_tokens: int | None = None,
        temperature: float | None = None, system: str | None = None) -> Completion:
    """Load the model (and adapter), answer `question`, return the completion."""
    if not question.strip():  # the bridge refuses a blank prompt too (bad_request)
        raise FarolError("the question is empty")
    limits = load_config("bridge", None, {"max_tokens": max_tokens, "temperature": temperature,
                                          "system_prompt": system})
    lm, tokenizer = load_model(model, adapter)
    return complete(lm, tokenizer, question, max_tokens=limits["max_tokens"],
                    temperature=limits["temperature"], system=limits["system_prompt"])
