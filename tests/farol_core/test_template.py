from farol_core import template
from farol_core.model import load_model


def test_render_follows_the_mistral_layout(tiny_model):
    _, tok = load_model(tiny_model)
    messages = [{"role": "system", "content": "Sê breve."},
                {"role": "user", "content": "Quem foi Hassan Nader?"},
                {"role": "assistant", "content": "Um avançado."}]
    text = template.render(tok, messages)
    assert text == "<s>[INST] Sê breve.\n\nQuem foi Hassan Nader? [/INST] Um avançado.</s>"


def test_training_offset_marks_where_the_answer_starts(tiny_model):
    _, tok = load_model(tiny_model)
    messages = template.to_messages("Onde fica Faro?") + [
        {"role": "assistant", "content": "Faro fica no Algarve."}]
    tokens, offset = template.encode_for_training(tok, messages)
    prompt = template.encode(tok, messages[:1], add_generation_prompt=True)
    assert tokens[:offset] == prompt
    assert tok.decode(tokens[offset:]).strip() == "Faro fica no Algarve.</s>"


def test_installed_template_is_what_mlx_lm_uses(tiny_model):
    _, tok = load_model(tiny_model)
    messages = [{"role": "user", "content": "Olá"}]
    via_mlx_lm = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert via_mlx_lm == template.render(tok, messages, add_generation_prompt=True)


def test_a_plain_text_record_trains_everything_after_bos(tiny_model):
    # farol-data turns {"text": ...} into a lone assistant message: no question to mask.
    _, tok = load_model(tiny_model)
    tokens, offset = template.encode_for_training(
        tok, [{"role": "assistant", "content": "O Farense joga em Faro."}])
    assert offset == 1 and tokens[0] == tok.bos_token_id
    assert tok.decode(tokens[offset:]).strip() == "O Farense joga em Faro.</s>"
