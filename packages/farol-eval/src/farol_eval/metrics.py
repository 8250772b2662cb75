"""Answer metrics for free text, SQuAD style, with a normaliser for Portuguese.

Every metric compares one generated answer with one reference answer and returns a number in
[0, 1] (answer_length returns a word count). Both texts go through `normalize` first.
"""

import re
import unicodedata
from collections import Counter

# Articles and article contractions carry no content, so they must not earn or cost credit.
# "à" and "às" (a + a) belong here too: without them, accent folding alone would drop them.
STOPWORDS = frozenset({"o", "a", "os", "as", "um", "uma", "uns", "umas",
                       "do", "da", "dos", "das", "no", "na", "nos", "nas", "ao", "aos",
                       "à", "às"})
_SPACES = re.compile(r"\s+")


def fold_accents(text: str) -> str:
    """`text` without diacritics: "São Luís" -> "Sao Luis"."""
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalize(text: str, accent_folding: bool = False) -> str:
    """NFC, lowercase, turn punctuation into spaces, drop articles and their contractions,
    optionally fold accents, and collapse whitespace."""
    # NFC first: "ã" typed as one character or as "a" + combining tilde is the same word.
    text = unicodedata.normalize("NFC", text).lower()
    text = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in text)
    kept = [w for w in _SPACES.split(text) if w and w not in STOPWORDS]
    # Folding after the articles are dropped, so it only merges accents: "nós" (we) and
    # "dá" (gives) stay words instead of becoming the contractions "nos" and "da".
    folded = [fold_accents(w) if accent_folding else w for w in kept]
    return " ".join(w for w in folded if w)  # a lone combining mark folds to nothing


def words(text: str, accent_folding: bool = False) -> list[str]:
    """The normalised words of `text`."""
    return normalize(text, accent_folding).split()


def exact_match(prediction: str, reference: str, accent_folding: bool = False) -> float:
    """1.0 when the normalised texts are identical, else 0.0."""
    return float(normalize(prediction, accent_folding) == normalize(reference, accent_folding))


def token_f1(prediction: str, reference: str, accent_folding: bool = False) -> float:
    """Harmonic mean of word precision and recall, counting shared words with multiplicity."""
    pred, ref = words(prediction, accent_folding), words(reference, accent_folding)
    overlap = sum((Counter(pred) & Counter(ref)).values())
    return _f_measure(overlap, len(pred), len(ref))


def rouge_l(prediction: str, reference: str, accent_folding: bool = False) -> float:
    """ROUGE-L F-measure: precision and recall of the longest common word subsequence."""
    pred, ref = words(prediction, accent_folding), words(reference, accent_folding)
    return _f_measure(lcs_length(pred, ref), len(pred), len(ref))


def answer_length(text: str) -> int:
    """Words in the answer as written (whitespace-separated, before normalising)."""
    return len(text.split())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two word lists (dynamic programming)."""
    prev = [0] * (len(b) + 1)
    for x in a:
        row = [0]
        for j, y in enumerate(b):
            row.append(prev[j] + 1 if x == y else max(prev[j + 1], row[j]))
        prev = row
    return prev[-1]


def _f_measure(overlap: int, n_pred: int, n_ref: int) -> float:
    # Two empty texts agree perfectly; one empty text shares nothing with the other.
    if n_pred == 0 or n_ref == 0:
        return float(n_pred == n_ref)
    if overlap == 0:
        return 0.0
    precision, recall = overlap / n_pred, overlap / n_ref
    return 2 * precision * recall / (precision + recall)


def score(prediction: str, reference: str, accent_folding: bool = False) -> dict:
    """All the per-question metrics of one answer."""
    return {
        "exact_match": exact_match(prediction, reference, accent_folding),
        "token_f1": token_f1(prediction, reference, accent_folding),
        "rouge_l": rouge_l(prediction, reference, accent_folding),
        "answer_length": answer_length(prediction),
    }
