"""Text cleaning that never changes meaning: no lowercasing, no accent stripping."""

import re
import unicodedata

_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_URL = re.compile(r"https?://\S+")


def clean_text(text: str) -> str:
    """NFKC; control characters dropped but newlines kept; runs of spaces and blank lines
    collapsed."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if c == "\n" or not unicodedata.category(c).startswith("C"))
    text = _SPACES.sub(" ", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return "\n".join(line.strip() for line in text.split("\n")).strip()


def count_urls(text: str) -> int:
    """How many http(s) links `text` holds."""
    return len(_URL.findall(text))


def word_count(text: str) -> int:
    """Words of at least one letter or digit."""
    return len(re.findall(r"\w+", text))
