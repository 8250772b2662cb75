"""Every input format, field mapping, and schema-checked reasons for bad records."""

import pytest
from farol_data.formats import RecordError, load_record_schema, map_fields, to_messages

ANSWER = "O Farense foi fundado em 1910."


@pytest.mark.parametrize(("record", "fmt", "user"), [
    ({"prompt": "Quando?", "completion": ANSWER}, "completion", "Quando?"),
    ({"instruction": "Quando?", "input": "", "output": ANSWER}, "alpaca", "Quando?"),
    # pandas' to_json writes an empty cell as null; it was a reject ("must be string")
    ({"instruction": "Quando?", "input": None, "output": ANSWER}, "alpaca", "Quando?"),
    ({"instruction": "Quando?", "input": "Em Faro.", "output": ANSWER}, "alpaca",
     "Quando?\n\nEm Faro."),
    ({"instrucao": "Quando?", "contexto": "Em Faro.", "resposta": ANSWER}, "alpaca",
     "Quando?\n\nEm Faro."),
    ({"messages": [{"role": "system", "content": "És útil."}, {"role": "user", "content": "Oi"},
                   {"role": "assistant", "content": "Olá!"}, {"role": "user", "content": "Quando?"},
                   {"role": "assistant", "content": ANSWER}]}, "chat", "Oi"),
])
def test_each_format_becomes_messages(record, fmt, user):
    got_fmt, messages = to_messages(map_fields(record, {}))
    assert got_fmt == fmt
    assert next(m["content"] for m in messages if m["role"] == "user") == user
    assert messages[-1] == {"role": "assistant", "content": ANSWER}


def test_plain_text_is_an_answer_alone():
    assert to_messages({"text": ANSWER}) == ("text", [{"role": "assistant", "content": ANSWER}])


def test_odd_field_names_are_mapped_through_config():
    raw = {"pergunta": "Quando?", "resposta_final": ANSWER, "tema": "historia"}
    mapped = map_fields(raw, {"pergunta": "prompt", "resposta_final": "completion",
                              "tema": "category"})
    assert mapped == {"prompt": "Quando?", "completion": ANSWER, "category": "historia"}
    assert raw == {"pergunta": "Quando?", "resposta_final": ANSWER, "tema": "historia"}
    # A field already present under Farol's name is never overwritten by an alias.
    assert map_fields({"prompt": "A", "pergunta": "B"}, {"pergunta": "prompt"})["prompt"] == "A"


@pytest.mark.parametrize(("record", "reason"), [
    ({"prompt": 3, "completion": ANSWER}, "field 'prompt' must be string, got integer"),
    ({"prompt": "  ", "completion": ANSWER}, "field 'prompt' is empty"),
    ({"completion": ANSWER}, "missing field 'prompt'"),
    ({"prompt": "Q?", "completion": ANSWER, "category": ["x"]},
     "field 'category' must be string, got array"),
    ({"messages": []}, "field 'messages' must contain at least 1 items"),
    ({"messages": [{"role": "bot", "content": "x"}]}, "field 'messages[0].role' must be one of"),
    ({"messages": [{"role": "user", "content": "Olá, tudo bem?"}]}, "last message must be"),
    ({"foo": "bar"}, "unknown format"),
])
def test_bad_records_get_a_reason_from_the_schema(record, reason):
    with pytest.raises(RecordError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        to_messages(record)


def test_the_schema_is_shipped_with_every_format():
    defs = load_record_schema()["$defs"]
    assert {"completion", "alpaca", "chat", "text_only", "prepared"} <= set(defs)
