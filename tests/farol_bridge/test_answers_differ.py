"""The bridge on the pre-trained tiny base: different prompts get different answers, and a
prompt gets the same answer whether it runs alone or batched with others."""

import json

from tests.farol_bridge.conftest import BridgeProcess


def _questions(processed, n=8):
    return [json.loads(line)["messages"][0]["content"]
            for line in (processed / "train.jsonl").read_text().splitlines()[:n]]


def test_eight_prompts_get_distinct_answers_alone_and_batched_alike(pretrained_4bit, processed):
    questions = _questions(processed)
    server = BridgeProcess(pretrained_4bit)
    try:
        alone = []
        for i, q in enumerate(questions):
            server.send({"id": f"a{i}", "op": "generate", "prompt": q, "max_tokens": 16})
            alone.append(server.final(f"a{i}", timeout=60)["response"])
        server.send(*[{"id": f"b{i}", "op": "generate", "prompt": q, "max_tokens": 16}
                      for i, q in enumerate(questions)])
        together = [server.final(f"b{i}", timeout=60) for i in range(len(questions))]
    finally:
        server.close()
    # At least 4 different strings (random weights gave 8 equal answers), so a swap between
    # requests, or every request getting the first one's answer, fails the comparison below.
    assert len(set(alone)) >= 4, alone
    assert any(r["timing"]["batched"] for r in together)
    assert [r["response"] for r in together] == alone


def test_eight_prompts_get_at_least_four_different_answers(pretrained_4bit, processed):
    server = BridgeProcess(pretrained_4bit)
    try:
        for i, q in enumerate(_questions(processed)):
            server.send({"id": f"a{i}", "op": "generate", "prompt": q, "max_tokens": 16})
        answers = [server.final(f"a{i}", timeout=60)["response"] for i in range(8)]
    finally:
        server.close()
    assert len(set(answers)) >= 4, answers
