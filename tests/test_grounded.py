"""Edit-grounded rationale decoding (rationale/grounded.py, engines/shared_prefix.py): the forced template
prefix of each edit kind and of no edit, edit order, batched decoding equal to one-at-a-time decoding,
vLLM's plain continuation requests, and what the model writes turned into one sentence."""

from __future__ import annotations

import pytest
import torch

from rationalign.explanations import align, span_edits
from rationalign.metrics.faithfulness import corpus_faithfulness
from rationalign.rationale.grounded import (
    SENTENCE_ENDS,
    clean_reason,
    grounded_answers,
    rationale_context,
    read_suggestion,
)


class ContinuationRecorder:
    """An engine whose continuations are scripted: it records each (prefix, tail) it is asked to continue
    and answers with `reply(decoded prefix + tail)`; its tokenizer and prompt ids are the real ones."""

    seq2seq = False

    def __init__(self, reply=lambda text: "it helps. More text"):
        from rationalign.models import load_tokenizer

        self.tok = load_tokenizer({"source": "tiny"})
        self.reply = reply
        self.asked: list[str] = []
        self.calls = 0

    def encode(self, prompts):
        return [self.tok(p, add_special_tokens=False)["input_ids"] for p in prompts]

    def continue_ids(self, groups, *, max_new_tokens, stop=None):
        self.calls += 1
        out = []
        for prefix, tails in groups:
            texts = [self.tok.decode(list(prefix) + list(t)) for t in tails]
            self.asked += texts
            out.append([self.reply(t) for t in texts])
        return out


SRC = "He go to school every days , and he like it ."
SUG = "He goes to school every day and he likes it ."


def test_forced_prefix_of_each_edit_kind_and_of_no_edit():
    eng = ContinuationRecorder()
    sources = ["I have car.", "I have a the car.", "She go home.", "It is fine."]
    outputs = ["I have a car.\nExplanation: x", "I have a car.\nExplanation: x", "She went home.\nExplanation: x",
               "It is fine.\nExplanation:"]
    answers = grounded_answers(eng, ["P1:", "P2:", "P3:", "P4:"], sources, ["gec"] * 4, position="after",
                               max_new_tokens=8, reason_max_new_tokens=8, outputs=outputs)
    assert [a.rationale for a in answers] == [
        'The word "a" should be inserted because it helps.',
        'The word "the" should be deleted because it helps.',
        'The word "go" should be replaced by "went" because it helps.',
        "The sentence is already grammatically correct, so no change is needed.",  # no edit: the template's
    ]
    # The model continued the prompt, the suggestion, the marker and the forced prefix, nothing else.
    assert eng.asked == ['P1:I have a car.\nExplanation: The word "a" should be inserted because',
                         'P2:I have a car.\nExplanation: The word "the" should be deleted because',
                         'P3:She went home.\nExplanation: The word "go" should be replaced by "went" because']
    assert [s.reason_from for a in answers for s in a.sentences] == ["model", "model", "model", "no_edit"]
    assert answers[0].output == 'I have a car.\nExplanation: The word "a" should be inserted because it helps.'
    assert all(a.ok for a in answers)


def test_several_edits_in_order_one_batch_and_faithful_by_construction():
    eng = ContinuationRecorder(reply=lambda text: f"reason {text.count('The word')}.")
    answers = grounded_answers(eng, ["A:", "B:"], [SRC, "She go home ."], ["gec", "gec"], position="after",
                               max_new_tokens=8, reason_max_new_tokens=8,
                               outputs=[SUG + "\nExplanation: anything", "She went home .\nExplanation: y"])
    edits = span_edits([SRC], [SUG])[0]
    assert len(edits) == 4 and eng.calls == 1  # every edit of every text in one call
    a = answers[0]
    assert [s.edit for s in a.sentences] == edits  # one sentence per edit, in the edits' order
    assert [(x.edit, x.claim is not None) for x in align(edits, a.rationale)] == [(i, True) for i in range(4)]
    res = corpus_faithfulness(["gec", "gec"], [SRC, "She go home ."], [a.suggestion for a in answers],
                              [a.rationale for a in answers])["overall"]
    assert (res["coverage"], res["precision"], res["edits"]) == (1.0, 1.0, 5)


def test_identical_edits_each_get_their_sentence_and_count_once_each():
    src, sug = "Yes , we can , and we will .", "Yes we can and we will ."
    eng = ContinuationRecorder()
    (a,) = grounded_answers(eng, ["P"], [src], ["gec"], position="after", max_new_tokens=8, reason_max_new_tokens=8,
                            outputs=[sug + "\nExplanation:"])
    assert [s.sentence for s in a.sentences] == ['The word "," should be deleted because it helps.'] * 2
    res = corpus_faithfulness(["gec"], [src], [sug], [a.rationale])["overall"]
    assert (res["edits"], res["explained_edits"], res["coverage"], res["precision"]) == (2, 2, 1.0, 1.0)


@pytest.mark.parametrize("raw,reason", [
    ("it corrects the tense. The word", "it corrects the tense."),
    ("it is clearer\nExplanation: x", "it is clearer."),
    ('"went" is the past tense!', '"went" is the past tense!'),
    ('the word "e.g', "the word e."),  # cut inside a quote: the lone quote goes
    ("", ""), (" .", ""), ("\n", ""),
])
def test_reason_is_one_sentence(raw, reason):
    assert clean_reason(raw) == reason


def test_model_writing_no_reason_gets_the_template_rule():
    eng = ContinuationRecorder(reply=lambda text: ".")
    (a,) = grounded_answers(eng, ["P"], ["She go home yesterday."], ["gec"], position="after", max_new_tokens=8,
                            reason_max_new_tokens=8, outputs=["She went home yesterday.\nExplanation:"])
    (s,) = a.sentences
    assert s.reason_from == "template" and s.sentence.startswith('The word "go" should be replaced by "went" because ')
    assert s.sentence.endswith(".") and len(s.reason) > 5


def test_rationale_first_layout_and_malformed_outputs():
    # rationale before the suggestion: the model's own rationale is replaced, the suggestion read after its marker
    assert read_suggestion("Explanation: blah\nRevised text: She went.", "She go.", "before") == ("She went.", True, "")
    assert rationale_context("She went.", "before") == "Explanation: "
    assert rationale_context("She went.", "after") == "She went.\nExplanation: "
    # no marker reached: scored on what it proposes, marked malformed; nothing proposed: the source
    assert read_suggestion("She went", "She go.", "after") == ("She went", False, "missing rationale marker")
    assert read_suggestion("", "She go.", "after") == ("She go.", False, "empty output")
    with pytest.raises(ValueError, match="need a system that writes one"):
        read_suggestion("She went.", "She go.", "none")


# ------------------------------------------------------------------------------- real decoding
@pytest.fixture(scope="module")
def tiny64():
    """The tiny model in float64 with larger random weights (greedy text varies token to token, so rows
    stop at different steps): float64 keeps batched and one-at-a-time argmaxes from differing by rounding."""
    from rationalign.models import load_base_model

    model, tok = load_base_model({"source": "tiny"})
    with torch.random.fork_rng():
        torch.manual_seed(0)
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 2:
                    p.normal_(0, 0.3)
    return model.double().eval(), tok


def _one_at_a_time(model, tok, ids, max_new_tokens, stop):
    """Reference: greedy generate on prefix + tail alone, cut where the engine's stop rule cuts."""
    gen = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id)[0, len(ids):].tolist()
    out = []
    for t in gen:
        if t == tok.eos_token_id:
            break
        out.append(t)
        if any(s in tok.decode(out, skip_special_tokens=True) for s in stop):
            break
    return out


def test_batched_continuations_equal_one_at_a_time(tiny64):
    from rationalign.engines.shared_prefix import greedy_continue

    model, tok = tiny64
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]
    groups = [(enc("Fix the grammar: he go home.\nHe goes home.\nExplanation:"),
               [enc(' The word "go" should be replaced by "goes" because'), enc(" The word")]),
              (enc("Simplify: notwithstanding"), [enc(" x")]),
              (enc("A much longer prompt about the weather in the city of Paris in the spring."),
               [enc(' The word "a" should be inserted because'), enc(" because"), enc(" The word \"the\" should")])]
    # A stop string the random model really writes: the 4th token of the first row's free continuation.
    free = _one_at_a_time(model, tok, groups[0][0] + groups[0][1][0], 12, [])
    stop = [tok.decode(free[3:4], skip_special_tokens=True).strip() or tok.decode(free[3:4])]
    stop_hit = lambda t: any(s in tok.decode(t, skip_special_tokens=True) for s in stop)
    want = [[_one_at_a_time(model, tok, p + t, 12, stop) for t in tails] for p, tails in groups]
    for max_rows in (64, 2):  # all tails in one batch; split over batches (a group split too)
        got = greedy_continue(model, groups, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                              max_new_tokens=12, stop_hit=stop_hit, max_rows=max_rows)
        assert got == want
    lengths = {len(r) for g in want for r in g}
    assert len(lengths) > 1 and all(r for g in want for r in g)  # rows ended at different steps, all wrote


def test_hf_engine_continues_the_same_as_its_plain_requests(tiny64):
    """HFEngine.continue_ids (shared prefix) against Engine.continue_ids (one request per prefix + tail)."""
    from rationalign.engines.base import Engine
    from rationalign.engines.hf import HFEngine
    from rationalign.training.chat import Layout

    model, tok = tiny64
    eng = HFEngine(model, tok, layout=Layout("plain"), batch_size=1, progress=False, prefill_once=True)
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]
    groups = [(enc("Fix: he go.\nHe goes.\nExplanation:"), [enc(" The word"), enc(" Because it")]),
              (enc("Hi"), [enc(" there")])]
    got = eng.continue_ids(groups, max_new_tokens=10, stop=list(SENTENCE_ENDS))
    plain = Engine.continue_ids(eng, groups, max_new_tokens=10, stop=list(SENTENCE_ENDS))
    assert got == plain and [len(g) for g in got] == [2, 1]


def test_vllm_gets_one_plain_continuation_request_per_edit(monkeypatch, tmp_path):
    import sys
    from pathlib import Path

    from rationalign.engines import build_engine
    from rationalign.runner import compose

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent / "fake_vllm"))
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    import vllm

    vllm.CALLS.clear()
    cfg = compose(["model=tiny", "engine=vllm", f"paths.root={tmp_path}"])
    with build_engine(cfg) as eng:
        answers = grounded_answers(eng, ["Fix: She go home.", "Fix: I have car."], ["She go home.", "I have car."],
                                   ["gec", "gec"], position="after", max_new_tokens=8, reason_max_new_tokens=5,
                                   outputs=["She went home.\nExplanation:", "I have a car.\nExplanation:"])
        prompt_ids = eng.encode(["Fix: She go home.", "Fix: I have car."])
        tok = eng.tok
    (gen,) = [c for c in vllm.CALLS if c["call"] == "generate"]
    want = [prompt_ids[0] + tok('She went home.\nExplanation: The word "go" should be replaced by "went" because',
                                add_special_tokens=False)["input_ids"],
            prompt_ids[1] + tok('I have a car.\nExplanation: The word "a" should be inserted because',
                                add_special_tokens=False)["input_ids"]]
    assert gen["kinds"] == ["tokens"] and gen["prompt_token_ids"] == want
    assert all(p["temperature"] == 0 and p["max_tokens"] == 5 and p["stop"] == list(SENTENCE_ENDS)
               for p in gen["params"])
    assert [len(a.sentences) for a in answers] == [1, 1]
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        del sys.modules[name]
