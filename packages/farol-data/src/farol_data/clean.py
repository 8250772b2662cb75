"""Text repair and cleaning that never change meaning: no lowercasing, no accent stripping."""

import re
import unicodedata
from functools import cache
from itertools import islice

import ftfy
from ftfy.fixes import unescape_html

_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_URL = re.compile(r"https?://\S+")
_WORD = re.compile(r"\w+")
# NFKC would turn these compatibility forms into plain letters and digits, changing what the
# text says: "1.ª Divisão" -> "1.a", "3º lugar" -> "3o", "m²" -> "m2", "½" -> "1⁄2".
_KEEP_FORMS = ("<super>", "<sub>", "<fraction>")
# UTF-8 read as Latin-1/cp1252 shows a lead byte (Â..ô) followed by a continuation byte (0x80-0xBF
# or its cp1252 letter). Clean text seldom has that pair, so ftfy only runs where it might help.
_MOJIBAKE = re.compile(
    "[\u00c2-\u00f4][\u0080-\u00bf\u20ac\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160"
    "\u2039\u0152\u017d\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a"
    "\u0153\u017e\u0178]"
)


def repair_mojibake(text: str) -> str:
    """Undo UTF-8 that was decoded as Latin-1/cp1252 ("VisÃ£o" -> "Visão"), line by line, with
    ftfy's encoding fixer only (no quote uncurling or other restyling)."""
    if text.isascii() or not _MOJIBAKE.search(text):
        return text
    return "\n".join(ftfy.fix_encoding(line) if _MOJIBAKE.search(line) else line
                     for line in text.split("\n"))


def clean_text(text: str) -> str:
    """HTML entities decoded, mojibake repaired, then `normalise`d. Repair runs once more on
    the result, because trimming can expose mojibake that a neighbouring space hid from ftfy."""
    if "&" in text:  # only complete entities ending in ";": "AT&T" and "isto&not" stay
        text = unescape_html(text)
    text = normalise(repair_mojibake(text))
    again = repair_mojibake(text)
    return text if again == text else normalise(again)


def repair_kinds(text: str) -> set[str]:
    """What clean_text repairs in `text`, for report.json: html_entities ("&amp;"), mojibake
    ("VisÃ£o"), unicode_forms (NFKC: full-width letters, ligatures), control_characters
    (dropped) and whitespace (runs, blank lines, ends)."""
    if text.isascii() and "&" not in text and _is_tidy(text):
        return set()  # the common case: nothing to repair
    kinds = set()
    for kind, step in (("html_entities", unescape_html if "&" in text else None),
                       ("mojibake", repair_mojibake),
                       ("unicode_forms", None if text.isascii() else nfkc)):
        repaired = step(text) if step else text
        kinds |= {kind} if repaired != text else set()
        text = repaired
    kept = "".join(c for c in text if c.isspace() or not unicodedata.category(c).startswith("C"))
    kinds |= {"control_characters"} if kept != text else set()
    kinds |= {"whitespace"} if normalise(kept) != kept else set()
    return kinds


def normalise(text: str) -> str:
    """NFKC (ordinals, superscripts and fractions kept); control and format characters dropped;
    runs of spaces and tabs made one space (newlines kept); blank lines collapsed; lines
    trimmed."""
    if not text.isascii():
        text = nfkc(text)
    if _is_tidy(text):  # the common case, checked without regular expressions
        return text
    # Whitespace controls (tab, CR) are kept here so they become a space below, not nothing.
    text = "".join(c for c in text if c.isspace() or not unicodedata.category(c).startswith("C"))
    text = _BLANK_LINES.sub("\n\n", _SPACES.sub(" ", text))
    return "\n".join(line.strip() for line in text.split("\n")).strip()


def nfkc(text: str) -> str:
    """Unicode NFKC, except that superscripts, subscripts and fractions (º ª ² ½) stay."""
    if unicodedata.is_normalized("NFKC", text):  # the common case, and a fast check
        return text
    kept = "".join(c for c in set(text) if _keeps_form(c))
    if not kept:
        return unicodedata.normalize("NFKC", text)
    parts = re.split(f"([{re.escape(kept)}])", text)  # odd items are the kept characters
    return "".join(p if i % 2 else unicodedata.normalize("NFKC", p) for i, p in enumerate(parts))


@cache
def _keeps_form(char: str) -> bool:
    return unicodedata.decomposition(char).startswith(_KEEP_FORMS)


def _is_tidy(text: str) -> bool:
    # Printable means no control, format or separator characters other than the ASCII space.
    return (text.isprintable() and "  " not in text and not text.startswith(" ")
            and not text.endswith(" "))


def count_urls(text: str) -> int:
    """How many http(s) links `text` holds."""
    return len(_URL.findall(text)) if "http" in text else 0


def word_count(text: str, at_most: int | None = None) -> int:
    """Words of at least one letter or digit; counting stops at `at_most` when given."""
    return sum(1 for _ in islice(_WORD.finditer(text), at_most))
