"""The stage `tape`: each step records its ops and empties its tape (its gradients:
tests/stages/test_every_stage.py)."""

from helpers import CFG, setup

from microgpt.stages import tape


def test_each_step_replays_and_empties_its_tape():
    tok, weights = setup()
    model = tape.Model(CFG, tok.vocab_size, weights)
    tokens = tok.encode("emma")
    all_logits = model.logits_per_position(tokens)
    # per position: embedding, norm; norm, q, k, v, attention, wo, add; norm, fc1, relu,
    # fc2, add; the head
    assert len(model.tape) == len(all_logits) * 15
    assert model.tape[0].__class__ is tape.Embedding
    model.train_step(tokens, 0, 10)
    assert model.tape == []
