"""The pipeline's rules end to end: sources, duplicates, the category cap, the report."""

import json

import pytest
from farol_core.config import validate
from farol_core.errors import FarolError
from farol_data import prepare
from farol_data.formats import is_valid
from farol_data.report import load_report_schema

ONE_SPLIT = {"split": {"train": 1, "valid": 0, "test": 0}}


def qa(question: str, answer: str, **extra) -> dict:
    return {"prompt": question, "completion": answer, **extra}


def write_jsonl(path, records) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False))
                            + "\n" for r in records), encoding="utf-8")
    return str(path)


def lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_sources_and_categories_follow_each_record(tmp_path):
    a = write_jsonl(tmp_path / "historia.jsonl", [qa("Quando foi fundado?", "Em 1910, em Faro.")])
    b = tmp_path / "extra.json"
    b.write_text(json.dumps([qa("Onde joga?", "No Estádio de São Luís.", category="estadio"),
                             qa("Que cor veste?", "Veste de preto e branco.")], indent=1))
    out = prepare([a, b], tmp_path / "out", config=ONE_SPLIT)
    records = {r["source"]: r for r in out.splits["train"]}
    # named from the folder of the inputs, never by the user's absolute path
    assert records["historia.jsonl:1"]["category"] == "historia"
    assert records["extra.json:2"]["category"] == "estadio"  # array items keep their line
    assert records["extra.json:7"]["category"] == "extra"
    for r in out.splits["train"]:
        assert is_valid("prepared", r)


def test_every_duplicate_names_the_record_it_duplicates(tmp_path):
    answer = "O Sporting Clube Farense foi fundado a 1 de abril de 1910, na cidade de Faro."
    src = write_jsonl(tmp_path / "d.jsonl", [
        qa("Quando foi fundado o Farense?", answer),
        qa("Quando foi fundado o Farense?", answer),            # exact
        qa("Quando foi fundado\u00a0o  Farense? ", answer + "\t"),  # exact after normalisation
        qa("Quando é que foi fundado o Farense?", answer),      # near
        qa("Quem treinou o Farense em 1990?", "Paco Fortes treinou a equipa nessa época."),
    ])
    r = prepare([src], tmp_path / "out", config=ONE_SPLIT).report
    assert (r["kept"], r["exact_duplicates"], r["near_duplicates"]) == (2, 2, 1)
    assert r["read"] == r["kept"] + r["rejected"] + r["duplicates"] == 5
    assert {d["duplicate_of"] for d in r["duplicate_of"]} == {"d.jsonl:1"}
    near = [d for d in r["duplicate_of"] if d["kind"] == "near"]
    assert all(0.85 <= d["similarity"] < 1 for d in near)
    off = prepare([src], tmp_path / "off", config={**ONE_SPLIT, "near_duplicate_threshold": None})
    assert off.report["near_duplicates"] == 0 and off.report["kept"] == 3


def test_category_cap_is_deterministic_by_seed_and_loses_nothing(tmp_path):
    recs = [qa(f"Pergunta número {i} sobre o clube?", f"Resposta número {i} bem diferente "
               f"{'x' * i} das outras.", category="clube" if i < 12 else "cidade")
            for i in range(15)]
    src = write_jsonl(tmp_path / "c.jsonl", recs)
    cfg = {**ONE_SPLIT, "max_per_category": 5, "near_duplicate_threshold": None}

    def kept(seed, name):
        out = prepare([src], tmp_path / name, config=cfg, seed=seed)
        assert out.report["categories"] == {"clube": 5, "cidade": 3}
        assert out.report["capped"] == 7 and out.report["rejected"] == 7
        assert out.report["read"] == 15
        assert out.report["formats"] == {"completion": 8}  # the kept ones, after the cap
        return [r["source"] for r in out.splits["train"]]

    assert kept(1, "a") == kept(1, "b")
    assert kept(1, "a") != kept(2, "c")
    rejects = lines(tmp_path / "a" / "rejects.jsonl")
    assert all("max_per_category (5)" in r["reason"] and r["raw"] for r in rejects)


def test_biographies_keep_their_player_on_one_side(tmp_path):
    bios = tmp_path / "jogadores"
    bios.mkdir()
    for i in range(6):
        (bios / f"p{i}.md").write_text(f"# Jogador {i}\n\nJogou no Farense durante {i + 2} épocas "
                                       f"e marcou {i * 7} golos.\n\nSegundo parágrafo {i}.\n")
    (bios / "latin1.md").write_bytes("# Jogador Ç\n\nJogou no Farense.".encode("latin-1"))
    cfg = {"biography_questions": ["Quem foi {name}?", "Fala-me de {name}.", "Onde jogou {name}?"],
           "near_duplicate_threshold": None}
    out = prepare([], tmp_path / "out", biographies=bios, config=cfg)
    r = out.report
    assert (r["read"], r["kept"], r["rejected"]) == (19, 18, 1)
    sides = {}
    for name, records in out.splits.items():
        for rec in records:
            assert rec["category"] == "jogadores" and rec["player"].startswith("Jogador")
            assert sides.setdefault(rec["player"], name) == name
    assert len(sides) == 6 and all(out.splits.values())
    reject = lines(tmp_path / "out" / "rejects.jsonl")[0]
    assert reject["source"].endswith("latin1.md") and "not UTF-8" in reject["reason"]


def test_lines_that_are_not_utf8_are_rejected_and_the_rest_kept(tmp_path):
    src = tmp_path / "mixed.jsonl"
    good = json.dumps(qa("Onde fica Faro?", "Faro fica no Algarve, no sul.")).encode()
    src.write_bytes(b"\xef\xbb\xbf" + good + b"\n" + '{"prompt": "Ol\xe1"}'.encode("latin-1")
                    + b"\n")
    out = prepare([src], tmp_path / "out", config=ONE_SPLIT)
    assert (out.report["kept"], out.report["rejected"]) == (1, 1)
    reject = lines(tmp_path / "out" / "rejects.jsonl")[0]
    assert reject["line"] == 2 and "not UTF-8" in reject["reason"] and "\\xe1" in reject["raw"]


def test_report_follows_its_schema_and_reads_as_markdown(processed):
    report = json.loads((processed / "report.json").read_text())
    validate(load_report_schema(), report, "report.json")
    md = (processed / "report.md").read_text()
    assert f"Read {report['read']} records = kept {report['kept']}" in md
    assert "## Diversity" in md and "Most common first word" in md
    for name in ("train", "valid", "test"):
        assert all(is_valid("prepared", r) for r in lines(processed / f"{name}.jsonl"))


def test_first_word_share_above_the_limit_is_flagged(tmp_path):
    recs = [qa(f"Quem marcou o golo {i}?", f"O golo {i} foi marcado por alguém {i}.")
            for i in range(4)] + [qa("Onde fica Faro?", "Faro fica no Algarve, no sul.")]
    src = write_jsonl(tmp_path / "w.jsonl", recs)
    cfg = {**ONE_SPLIT, "near_duplicate_threshold": None}
    fw = prepare([src], tmp_path / "o", config=cfg).report["diversity"]["first_word"]
    assert (fw["word"], fw["count"], fw["questions"], fw["share"]) == ("quem", 4, 5, 0.8)
    assert fw["flagged"] is True
    fw = prepare([src], tmp_path / "o2", config={**cfg, "max_first_word_share": 0.9}
                 ).report["diversity"]["first_word"]
    assert fw["flagged"] is False


def test_unreadable_inputs_name_the_file(tmp_path):
    with pytest.raises(FarolError, match="Input is not a file"):
        prepare([tmp_path], tmp_path / "out")
    with pytest.raises(FarolError, match="Biographies folder not found"):
        prepare([], tmp_path / "out", biographies=tmp_path / "nope")
    src = write_jsonl(tmp_path / "dups.jsonl", [qa("A?", "Uma resposta igual aqui."),
                                                qa("A?", "Uma resposta igual aqui.")])
    with pytest.raises(FarolError, match="Nothing usable"):
        prepare([src], tmp_path / "out", config={"max_answer_chars": 5})


def test_a_conversation_stays_on_one_side(tmp_path):
    recs = []
    for conv in range(10):
        for turn in range(3):
            recs.append({"messages": [
                {"role": "user", "content": f"Conversa {conv}, pergunta {turn}?"},
                {"role": "assistant", "content": f"Resposta {turn} da conversa {conv} aqui."}],
                "conversa_id": conv})
    src = write_jsonl(tmp_path / "chat.jsonl", recs)
    out = prepare([src], tmp_path / "out", config={"near_duplicate_threshold": None})
    sides = {}
    for name, records in out.splits.items():
        for r in records:
            assert sides.setdefault(r["group"], name) == name
    assert len(sides) == 10 and out.report["groups"]["train"] == 8


def test_nothing_usable_names_the_file_and_why(tmp_path):
    src = tmp_path / "latin1.jsonl"
    src.write_bytes('{"prompt": "Olá", "completion": "Ótimo, está tudo bem."}\n'.encode("latin-1"))
    with pytest.raises(FarolError, match="Nothing usable") as e:
        prepare([src], tmp_path / "out")
    assert f"{src}:1: not UTF-8 text" in str(e.value)


def test_each_biography_question_is_kept(tmp_path):
    # The questions share one answer on purpose; they must not drop each other as near-duplicates.
    bios = tmp_path / "jogadores"
    bios.mkdir()
    (bios / "hassan.md").write_text(
        "# Hassan Nader\n\nHassan Nader foi um avançado marroquino que marcou 21 golos pelo "
        "Farense na época 1994-95 e foi o melhor marcador do campeonato.\n\nNessa época o clube "
        "ficou em quinto lugar e chegou, pela primeira vez, à Taça UEFA.\n", encoding="utf-8")
    questions = ["Quem foi {name}?", "Fala-me de {name}.", "O que sabes sobre {name}?"]
    r = prepare([], tmp_path / "out", biographies=bios,
                config={**ONE_SPLIT, "biography_questions": questions}).report
    assert (r["kept"], r["near_duplicates"]) == (3, 0)


def test_questions_that_share_an_answer_share_a_split(tmp_path):
    # A question asked two ways (too different to be a near-duplicate) with one answer: were the
    # two split apart, the test answer would have been trained on word for word.
    recs = []
    for i in range(20):
        answer = f"A resposta {i} é esta: {'abcdefghij'[i % 10] * (i + 3)} e mais nada."
        recs += [qa(f"Pergunta número {i}?", answer), qa(f"Podes dizer-me o tema {i}?", answer)]
    src = write_jsonl(tmp_path / "p.jsonl", recs)
    out = prepare([src], tmp_path / "out")
    assert out.report["kept"] == 40
    sides = {}
    for name, records in out.splits.items():
        for r in records:
            assert sides.setdefault(r["messages"][-1]["content"], name) == name
