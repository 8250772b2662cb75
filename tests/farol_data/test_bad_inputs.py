"""Inputs a daily user really passes by mistake: each gives one clear line, never a traceback,
and never loses the user's files or a previous good output."""

import errno
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from farol_core.config import ConfigError
from farol_core.dataset import read_messages
from farol_core.errors import FarolError
from farol_data import prepare
from farol_data.cli import main
from farol_data.formats import map_fields, to_messages

ONE_SPLIT = {"split": {"train": 1, "valid": 0, "test": 0}}
GOOD = [{"prompt": f"Quem fundou o clube {i}?",
         "completion": f"O clube {i} foi fundado por sócios de Faro."} for i in range(4)]


def good_file(path) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in GOOD),
                    encoding="utf-8")
    return str(path)


def test_biography_with_a_byte_order_mark_keeps_its_heading(tmp_path):
    bios = tmp_path / "jogadores"
    bios.mkdir()
    (bios / "ficheiro.md").write_bytes("\ufeff# Hassan Nader\n\nAvançado marroquino do Farense."
                                       .encode("utf-8"))
    out = prepare([], tmp_path / "out", biographies=bios, config=ONE_SPLIT)
    messages = out.splits["train"][0]["messages"]
    assert messages[0]["content"] == "Quem foi Hassan Nader?"
    assert messages[1]["content"] == "Avançado marroquino do Farense."



def test_biography_section_headings_drop_the_heading_not_its_text(tmp_path):
    # Markdown often puts a section's text right under its "## Heading", with no blank line.
    bios = tmp_path / "jogadores"
    bios.mkdir()
    (bios / "joao.md").write_text("# João Silva\n\n## Biografia\nDefesa central do Farense."
                                  "\n\n## Carreira\nJogou depois no Benfica.\n", encoding="utf-8")
    out = prepare([], tmp_path / "out", biographies=bios,
                  config={**ONE_SPLIT, "biography_paragraphs": 3, "min_answer_words": 1})
    assert out.splits["train"][0]["messages"][1]["content"] == (
        "Defesa central do Farense.\n\nJogou depois no Benfica.")



def test_a_message_that_cleaning_empties_is_rejected(tmp_path):
    # The schema sees a character, cleaning removes it; training refuses an empty message.
    src = tmp_path / "vazio.jsonl"
    src.write_text(json.dumps({"prompt": "\u200b", "completion": "Uma resposta boa aqui."}) + "\n"
                   + json.dumps({"prompt": "&nbsp;", "completion": "Outra resposta boa."}) + "\n"
                   + json.dumps({"prompt": "Pergunta?", "completion": "\u200b"}) + "\n"
                   + json.dumps(GOOD[0]) + "\n")
    out = prepare([src], tmp_path / "out",
                  config={**ONE_SPLIT, "min_answer_chars": 0, "min_answer_words": 0})
    assert (out.report["kept"], out.report["rejected"]) == (1, 3)
    assert read_messages(tmp_path / "out" / "train.jsonl")
    reasons = [json.loads(x)["reason"] for x in (tmp_path / "out" / "rejects.jsonl").open()]
    assert reasons == ["the user message is empty after cleaning"] * 2 + [
        "the assistant message is empty after cleaning"]

def test_biographies_folder_without_biographies_is_an_error(tmp_path):
    (tmp_path / "bios").mkdir()
    (tmp_path / "bios" / "notas.docx").write_text("x")
    with pytest.raises(FarolError, match="No biographies"):
        prepare([good_file(tmp_path / "a.jsonl")], tmp_path / "out", biographies=tmp_path / "bios")


def test_field_map_overrides_a_builtin_alias():
    record = {"pergunta": "Quem foi Hassan Nader?", "resposta": "Um avançado do Farense."}
    mapped = map_fields(record, {"pergunta": "prompt", "resposta": "completion"})
    assert to_messages(mapped)[0] == "completion"


def test_empty_input_says_it_holds_no_records(tmp_path):
    (tmp_path / "vazio.jsonl").write_text("\n\n")
    with pytest.raises(FarolError) as err:
        prepare([tmp_path / "vazio.jsonl"], tmp_path / "out")
    assert "no records" in str(err.value) and "duplicates an earlier" not in str(err.value)


def test_an_input_given_twice_is_an_error(tmp_path):
    src = good_file(tmp_path / "a.jsonl")
    with pytest.raises(FarolError, match="given twice"):
        prepare([src, tmp_path / "." / "a.jsonl"], tmp_path / "out")


def test_an_input_the_output_would_overwrite_is_refused(tmp_path):
    src = good_file(tmp_path / "train.jsonl")
    before = (tmp_path / "train.jsonl").read_text()
    with pytest.raises(FarolError, match="would be overwritten"):
        prepare([src], tmp_path)
    assert (tmp_path / "train.jsonl").read_text() == before


def test_output_path_that_is_a_file_is_one_line(tmp_path):
    src = good_file(tmp_path / "a.jsonl")
    result = CliRunner().invoke(main, ["prepare", "--input", src, "--out", src])
    assert result.exit_code == 1 and "is a file" in result.output
    assert "Traceback" not in result.output
    nested = CliRunner().invoke(main, ["prepare", "--input", src, "--out", f"{src}/out"])
    assert nested.exit_code == 1 and "Could not write" in nested.output


def test_a_failed_write_keeps_the_previous_outputs_whole(tmp_path, monkeypatch):
    from farol_data.spool import Spool

    src = good_file(tmp_path / "a.jsonl")
    out = tmp_path / "out"
    prepare([src], out, config=ONE_SPLIT)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def disk_full(self):  # rejects.jsonl is written after the three splits
        raise OSError(errno.ENOSPC, "No space left on device")
        yield

    monkeypatch.setattr(Spool, "__iter__", disk_full)
    (tmp_path / "b.jsonl").write_text(json.dumps(GOOD[0] | {"prompt": "Outra pergunta?"}) + "\n")
    with pytest.raises(FarolError, match="No space left"):
        prepare([tmp_path / "b.jsonl"], out, config=ONE_SPLIT)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_text_after_a_json_array_is_read_not_dropped(tmp_path):
    src = tmp_path / "misto.json"
    src.write_text(json.dumps(GOOD[:1]) + "\n" + json.dumps(GOOD[1]) + "\n\n[1]\n")
    r = prepare([src], tmp_path / "out", config=ONE_SPLIT).report
    assert (r["read"], r["kept"], r["rejected"]) == (3, 2, 1)
    reject = json.loads((tmp_path / "out" / "rejects.jsonl").read_text())
    assert (reject["line"], reject["raw"]) == (4, "[1]")


def test_split_ratios_all_zero_is_a_config_error(tmp_path):
    src = good_file(tmp_path / "a.jsonl")
    with pytest.raises(ConfigError, match="at least one of train/valid/test"):
        prepare([src], tmp_path / "out", config={"split": {"train": 0, "valid": 0, "test": 0}})
    # Listed with the schema's problems, not after they are fixed.
    with pytest.raises(ConfigError) as e:
        prepare([src], tmp_path / "out", config={"split": {"train": 0, "valid": 0, "test": 0},
                                                 "seeed": 1})
    assert len(e.value.problems) == 2 and "seeed" in str(e.value)


def test_odd_field_names_are_named_in_the_reject(tmp_path):
    src = tmp_path / "odd.jsonl"
    src.write_text(json.dumps({"Pergunta": "Quem?", "Resposta": "Um jogador do Farense."}) + "\n"
                   + json.dumps(GOOD[0]) + "\n")
    prepare([src], tmp_path / "out", config=ONE_SPLIT)
    reject = json.loads((tmp_path / "out" / "rejects.jsonl").read_text())
    assert (reject["source"], reject["line"]) == (str(src), 1)
    assert "fields: Pergunta, Resposta" in reject["reason"] and "field_map" in reject["reason"]


def test_lone_surrogates_from_a_cut_emoji_do_not_stop_the_run(tmp_path):
    # JavaScript's JSON.stringify writes half an emoji as a lone "\ud83d" escape.
    src = tmp_path / "bot.jsonl"
    src.write_text('{"prompt": "Quem \\ud83d foi?", "completion": "curta"}\n'
                   '{"prompt": "Quem foi?", "completion": "Um extremo do Farense.",'
                   ' "category": "jogadores \\ud83d"}\n')
    r = prepare([src], tmp_path / "out", config=ONE_SPLIT).report
    assert (r["kept"], r["rejected"], r["categories"]) == (1, 1, {"jogadores": 1})
    reject = json.loads((tmp_path / "out" / "rejects.jsonl").read_text())
    assert json.loads(reject["raw"])["prompt"] == "Quem \ud83d foi?"


def test_macos_resource_fork_files_are_not_biographies(tmp_path):
    from farol_data.biographies import biography_files

    folder = tmp_path / "bios"
    folder.mkdir()
    (folder / "hassan_nader.md").write_text("# Hassan Nader\n\nAvançado marroquino.\n")
    (folder / "._hassan_nader.md").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    assert [p.name for p in biography_files(folder)] == ["hassan_nader.md"]


def test_biography_links_out_of_the_folder_and_special_files_are_rejected(tmp_path):
    # A shared or unpacked folder must not leak local files into a model; a FIFO would block.
    secret = tmp_path / "segredo.md"
    secret.write_text("# Segredo\n\nroot:x:0:0:a senha local do utilizador", encoding="utf-8")
    outside = tmp_path / "fora"
    outside.mkdir()
    (outside / "outro.md").write_text("# Outro\n\nTexto privado de outra pasta local.")
    bios = tmp_path / "jogadores"
    bios.mkdir()
    (bios / "hassan.md").write_text("# Hassan Nader\n\nAvançado marroquino do Farense.",
                                    encoding="utf-8")
    (bios / "passwd.md").symlink_to(secret)
    (bios / "pasta").symlink_to(outside)
    (bios / "copia.md").symlink_to(bios / "hassan.md")  # inside the folder: read
    os.mkfifo(bios / "fila.md")
    result = CliRunner().invoke(main, ["prepare", "--biographies", str(bios),
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    written = "".join((out / f"{s}.jsonl").read_text() for s in ("train", "valid", "test"))
    assert "Hassan Nader" in written and "senha" not in written and "privado" not in written
    reasons = {Path(r["source"]).name: r["reason"] for r in map(
        json.loads, (out / "rejects.jsonl").read_text().splitlines())}
    assert reasons["passwd.md"] == (f"link to {secret.resolve()}, outside the biographies "
                                    "folder; not followed")
    assert reasons["fila.md"] == "not a regular file (FIFO); not read"
    assert "pasta" not in reasons and "outro.md" not in written  # a linked folder isn't entered
    report = json.loads((out / "report.json").read_text())
    assert report["read"] == report["kept"] + report["rejected"] + report["duplicates"] == 4
