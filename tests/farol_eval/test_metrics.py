"""Answer metrics against cases computed by hand."""

import math
import unicodedata

import pytest
from farol_eval.metrics import (
    answer_length,
    exact_match,
    lcs_length,
    normalize,
    rouge_l,
    score,
    token_f1,
)


def test_normalize_drops_articles_contractions_and_punctuation():
    assert normalize("O Farense, fundado em 1910!") == "farense fundado em 1910"
    assert normalize("  Os jogadores  do clube   da cidade ") == "jogadores clube cidade"
    assert normalize("Ao estádio: nas bancadas.") == "estádio bancadas"
    # punctuation becomes a space, so hyphenated words split the same way on both sides
    assert normalize("guarda-redes") == "guarda redes"
    assert normalize("Estádio São Luís", accent_folding=True) == "estadio sao luis"


def test_exact_match_after_normalising():
    assert exact_match("O Farense.", "farense") == 1.0
    assert exact_match("Farense", "Olhanense") == 0.0
    assert exact_match("Estádio São Luís", "estadio sao luis") == 0.0
    assert exact_match("Estádio São Luís", "estadio sao luis", accent_folding=True) == 1.0


def test_token_f1_hand_computed():
    # pred: farense foi fundado em 1910 (5 words)
    # ref: sporting clube farense foi fundado 1 de abril de 1910 (10 words); 4 shared
    # precision 4/5, recall 4/10, F1 = 2 * 0.8 * 0.4 / 1.2 = 8/15
    pred = "O Farense foi fundado em 1910"
    ref = "O Sporting Clube Farense foi fundado a 1 de abril de 1910"
    assert math.isclose(token_f1(pred, ref), 8 / 15)


def test_token_f1_counts_repeated_words_once_per_occurrence():
    # pred: de de de (3); ref: 1 de abril de 1910 (5); shared "de" twice
    # precision 2/3, recall 2/5, F1 = 2 * (2/3) * (2/5) / (16/15) = 1/2
    assert math.isclose(token_f1("de de de", "1 de abril de 1910"), 0.5)


def test_rouge_l_rewards_order_where_f1_does_not():
    # pred: faro fica algarve; ref: algarve fica em faro. Every pred word is shared (F1:
    # precision 1, recall 3/4 -> 6/7) but the longest common subsequence has 1 word
    # (ROUGE-L: precision 1/3, recall 1/4 -> 2/7).
    pred, ref = "Faro fica no Algarve", "O Algarve fica em Faro"
    assert math.isclose(token_f1(pred, ref), 6 / 7)
    assert math.isclose(rouge_l(pred, ref), 2 / 7)
    assert lcs_length(["a", "b", "c", "d", "e"], ["a", "c", "e", "b"]) == 3


def test_empty_answers():
    assert token_f1("", "") == 1.0 and rouge_l("", "") == 1.0
    assert token_f1("....", "Faro") == 0.0 and rouge_l("o a", "Faro") == 0.0
    assert exact_match("", "Faro") == 0.0


def test_answer_length_counts_written_words():
    assert answer_length("O Farense foi fundado em 1910.") == 6
    assert answer_length("   ") == 0


@pytest.mark.parametrize("text", ["Faro", "O Farense venceu 2-1 em casa.", "ÁÉÍ óú"])
def test_identical_text_scores_one(text):
    s = score(text, text)
    assert s["exact_match"] == s["token_f1"] == s["rouge_l"] == 1.0


def test_composed_and_decomposed_accents_are_the_same_word():
    # "São" typed as "a" + combining tilde (NFD, as macOS and some editors write it)
    decomposed = unicodedata.normalize("NFD", "São João")
    assert exact_match(decomposed, "São João") == 1.0
    assert token_f1(decomposed, "São João") == 1.0


def test_crase_is_a_contraction_and_folding_only_merges_accents():
    # "à"/"às" (a + a) are dropped with folding off too, so folding changes nothing else
    assert normalize("Foi à praia às duas") == "foi praia duas"
    assert normalize("Foi à praia às duas", accent_folding=True) == "foi praia duas"
    # "nós" (we) and "dá" (gives) are words, not the contractions "nos" and "da"
    assert normalize("Nós dá", accent_folding=True) == "nos da"
    assert exact_match("\u0301 Faro", "Faro", accent_folding=True) == 1.0
