"""Repair and cleaning: mojibake fixed, Unicode normalised, meaning untouched."""

from pathlib import Path

import pytest
from farol_data.clean import clean_text, normalise, repair_mojibake
from hypothesis import given, settings
from hypothesis import strategies as st

GUIDE = Path(__file__).parent / "data" / "guia_jupyter_excerto.md"


@pytest.mark.parametrize(("broken", "fixed"), [
    ("VisÃ£o", "Visão"), ("Ã§", "ç"), ("â€”", "—"),
    ("DuraÃ§Ã£o: 2-3 horas â€” treino completo", "Duração: 2-3 horas — treino completo"),
])
def test_mojibake_is_repaired(broken, fixed):
    assert repair_mojibake(broken) == fixed
    assert clean_text(broken) == fixed


def test_the_users_guide_broken_as_it_was_comes_back_whole():
    original = GUIDE.read_text(encoding="utf-8")
    # What the user's editor did: UTF-8 bytes read as cp1252.
    broken = original.encode("utf-8").decode("cp1252", errors="ignore")
    assert "VisÃ£o" in broken and "DuraÃ§Ã£o" in broken
    assert repair_mojibake(broken) == original


def test_correct_text_is_left_alone():
    original = GUIDE.read_text(encoding="utf-8")
    assert repair_mojibake(original) == original
    for text in ("Ângulo à direita, São João", "Preço: 5€ — “aspas”", "Ãrea"):
        assert repair_mojibake(text) == text


def test_cleaning_keeps_meaning():
    raw = "  Estádio   de\u00a0São Luís \x07\n\n\n\nFaro\tCIDADE "
    assert clean_text(raw) == "Estádio de São Luís\n\nFaro CIDADE"
    assert clean_text("ﬁm ①") == "fim 1"  # NFKC
    assert clean_text("a\u200bb\r\nc") == "ab\nc"  # format characters go, newlines stay


def _reference_normalise(text: str) -> str:
    # The guide's steps, character by character, without Farol's fast path.
    import re
    import unicodedata

    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if c.isspace() or not unicodedata.category(c).startswith("C"))
    text = re.sub(r"\n\s*\n+", "\n\n", re.sub(r"[^\S\n]+", " ", text))
    return "\n".join(line.strip() for line in text.split("\n")).strip()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aé Ã£\n\t\r\x00\u200b\u00a0\u3000ﬁ—€") + ["x"]),
               max_size=30))
def test_the_fast_path_cleans_exactly_like_the_reference(text):
    assert normalise(text) == _reference_normalise(text)
    assert clean_text(clean_text(text)) == clean_text(text)


def test_ordinals_superscripts_and_fractions_survive_nfkc():
    # NFKC alone would write "1a Divisão", "3o lugar" and "m2": Portuguese needs º and ª.
    raw = "Subiu à 1ª Divisão, ficou em 3º lugar; relvado de 7000\u00a0m², ½ época. ﬁm"
    assert clean_text(raw) == ("Subiu à 1ª Divisão, ficou em 3º lugar; relvado de 7000 m², "
                               "½ época. fim")


def test_html_entities_are_decoded():
    raw = "Alcunha: &quot;Leões de Faro&quot; &amp; São&nbsp;Luís, &#233;poca &eacute;pica"
    assert clean_text(raw) == 'Alcunha: "Leões de Faro" & São Luís, época épica'
    for text in ("AT&T, R&D e P&B", "isto&not aquilo", "a & b"):  # no ';': not an entity
        assert clean_text(text) == text
