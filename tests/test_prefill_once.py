"""engine.prefill_once: the prompt computed once for its n samples, finished rows dropped.

Greedy decoding must give exactly `model.generate`'s tokens (same processors, same order), including
when rows of one batch end at different steps (EOS or a stop string) and leave the cache; sampling
must give n draws per prompt, reproducible from the seed, and collapse to greedy when it is cold.
"""

from __future__ import annotations

import pytest
import torch

from rationalign.engines.hf import HFEngine
from rationalign.engines.prefill_once import sample_prefill_once
from rationalign.models import load_base_model
from rationalign.training.chat import Layout

PROMPTS = ["Fix the grammar: he go home yesterday", "Make this formal: gonna be late, sorry",
           "Simplify: notwithstanding the aforementioned provisions of the act", "Paraphrase: hi"]


@pytest.fixture(scope="module")
def tiny():
    model, tok = load_base_model({"source": "tiny"})
    # Larger random weights than the init: greedy text then varies token to token (the init repeats
    # one token), so rows end at different steps and stop strings can match mid-output.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 2:
                    p.normal_(0, 0.3)
    model.eval()
    return model, tok


def _engine(tiny, prefill_once, batch_size=8):
    model, tok = tiny
    return HFEngine(model, tok, layout=Layout("plain"), batch_size=batch_size, progress=False,
                    prefill_once=prefill_once)


def _left_pad(tok, rows):
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    att = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r)
        att[i, width - len(r):] = 1
    return ids, att


def test_greedy_matches_generate(tiny):
    plain = _engine(tiny, False).sample(PROMPTS, n=1, temperature=0, max_new_tokens=12)
    once = _engine(tiny, True).sample(PROMPTS, n=1, temperature=0, max_new_tokens=12)
    assert once == plain
    assert all(o[0] for o in once)  # something was generated, so the comparison means something


def test_rows_ending_early_leave_the_batch_without_changing_the_others(tiny):
    """Make the 4th greedy token of prompt 0 the EOS: that row ends after 3 tokens and is dropped from the
    cache; every other row must still match generate token for token."""
    model, tok = tiny
    eng = _engine(tiny, False)
    rows = eng.encode(PROMPTS)
    ids, att = _left_pad(tok, rows)
    ref = model.generate(input_ids=ids, attention_mask=att, do_sample=False, max_new_tokens=10,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)[:, ids.shape[1]:]
    j = 3
    fake_eos = int(ref[0, j])
    ref = model.generate(input_ids=ids, attention_mask=att, do_sample=False, max_new_tokens=10,
                         pad_token_id=tok.pad_token_id, eos_token_id=fake_eos)[:, ids.shape[1]:]
    got = sample_prefill_once(model, ids, att, 1, max_new_tokens=10, eos_token_id=fake_eos)
    lengths = {len(g) for g in got}
    assert len(got[0]) == j and len(lengths) > 1  # rows really ended at different steps
    for g, r in zip(got, ref.tolist()):
        r = r[:r.index(fake_eos)] if fake_eos in r else r
        assert g == r


def test_stop_strings_match_generate(tiny):
    first = _engine(tiny, False).sample(PROMPTS[:1], n=1, temperature=0, max_new_tokens=12)[0][0]
    stop = [first.split()[1]] if len(first.split()) > 1 else [first[:3]]
    plain = _engine(tiny, False).sample(PROMPTS, n=1, temperature=0, max_new_tokens=12, stop=stop)
    once = _engine(tiny, True).sample(PROMPTS, n=1, temperature=0, max_new_tokens=12, stop=stop)
    assert once == plain
    assert stop[0] in once[0][0] and len(once[0][0]) < len(first) + 1


def test_sampling_n_per_prompt_reproducible(tiny):
    kw = {"temperature": 1.0, "top_p": 0.95, "presence_penalty": 0.5, "max_new_tokens": 8}
    a = _engine(tiny, True).sample(PROMPTS, n=4, **kw)
    b = _engine(tiny, True).sample(PROMPTS, n=4, **kw)
    c = _engine(tiny, True).sample(PROMPTS, n=4, seed=123, **kw)
    assert a == b and a != c
    assert [len(x) for x in a] == [4] * len(PROMPTS)
    assert any(len(set(x)) > 1 for x in a)  # the n samples of a prompt differ: the cache was repeated


def test_cold_sampling_is_greedy(tiny):
    """At a temperature near 0 every one of the n samples is the greedy answer: the repeated cache
    gives each sample the prompt's true state."""
    greedy = _engine(tiny, False).sample(PROMPTS, n=1, temperature=0, max_new_tokens=8)
    cold = _engine(tiny, True).sample(PROMPTS, n=3, temperature=1e-4, max_new_tokens=8)
    assert cold == [[g[0]] * 3 for g in greedy]


def test_factory_reads_the_option(tmp_path):
    from rationalign.engines import build_engine
    from rationalign.runner import compose

    for value in (True, False):
        cfg = compose(["model=tiny", f"engine.prefill_once={value}", f"paths.root={tmp_path}"])
        with build_engine(cfg, progress=False) as eng:
            assert eng.prefill_once is value
    assert compose(["model=tiny"]).engine.prefill_once is True  # the default


@pytest.mark.parametrize(("top_k", "top_p"), [(50, 0.9), (0, 0.7), (5, 1.0), (3, 0.5)])
def test_draw_has_the_distribution_of_transformers_warpers(top_k, top_p):
    """The kept tokens and their probabilities equal those of TemperatureLogitsWarper -> TopKLogitsWarper
    -> TopPLogitsWarper, checked exactly on the support and by frequency on 20k draws."""
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    from rationalign.engines.prefill_once import draw

    g = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 200, generator=g) * 3
    chain = LogitsProcessorList([TemperatureLogitsWarper(0.8)] + ([TopKLogitsWarper(top_k)] if top_k else [])
                                + ([TopPLogitsWarper(top_p)] if top_p < 1 else []))
    want = chain(None, scores.clone()).softmax(-1)
    rows = scores.repeat_interleave(10_000, dim=0)
    got = draw(rows, temperature=0.8, top_k=top_k, top_p=top_p, generator=g).view(2, -1)
    for r in range(2):
        freq = torch.bincount(got[r], minlength=200).float() / got.shape[1]
        assert set(torch.nonzero(freq).flatten().tolist()) <= set(torch.nonzero(want[r]).flatten().tolist())
        assert torch.allclose(freq, want[r], atol=0.015)
