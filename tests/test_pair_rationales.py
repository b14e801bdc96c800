"""stage=pair_rationales: sources (template, file, teacher via the local chat server, local via a fake
engine), per-pair response order, the permute / opposite ablations, and align with rdpo / rorpo on
the tiny model consuming the stage's output."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from rationalign.rationale.pairs import (
    PAIR_SOURCES,
    PairLocalConfig,
    PairTeacherConfig,
    PairTemplateConfig,
    PairView,
    chosen_first,
    derangement,
    parse_pair_rationale_config,
    permute,
)
from rationalign.rationale.pairs.sources import from_local, generation_prompts
from rationalign.rationale.pairs.template import template_rationales
from rationalign.runner import compose, run

try:
    from tests.chat_server import ChatServer
except ImportError:  # tests/ is not a package when pytest puts it on sys.path itself
    from chat_server import ChatServer

CONF = Path(__file__).resolve().parents[1] / "conf" / "pair_rationale"

# (source, chosen suggestion, rejected suggestion): the chosen fixes what the rejected leaves or breaks.
TRIPLES = [
    ("he go to school every day.", "He goes to school every day.", "He go to school every day."),
    ("she have two cat.", "She has two cats.", "She have two cats."),
    ("they was late yesterday.", "They were late yesterday.", "They was late yesterday."),
    ("i has a new bike.", "I have a new bike.", "I has a new bike."),
    ("the dog run in park.", "The dog runs in the park.", "The dog run in the park."),
    ("my sister like apples.", "My sister likes apples.", "My sister liked apple."),
    ("we goes home now.", "We go home now.", "We goes home now."),
    ("he dont know her.", "He doesn't know her.", "He dont know her."),
    ("the book are on table.", "The book is on the table.", "The book are on the table."),
    ("it rain a lot here.", "It rains a lot here.", "It rain alot here."),
]


def dh_rows(n: int = 10) -> list[dict]:
    rows = []
    for i in range(n):
        src, w, lo = TRIPLES[i % len(TRIPLES)]
        rows.append({"id": f"p{i:02d}", "task": "gec", "instruction": "Fix the grammar:", "source": src,
                     "chosen": f"{w}\nExplanation: fixed the errors.", "rejected": f"{lo}\nExplanation: fixed it.",
                     "chosen_reward": 0.9, "rejected_reward": 0.2, "chosen_suggestion": w, "rejected_suggestion": lo})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pr_overrides(tmp_path, pairs, *extra):
    return ["model=tiny", f"paths.root={tmp_path / 'out'}", "stage=pair_rationales",
            f"pair_rationale.pairs={pairs}", *extra]


def stage_out(manifest_or_cfg_overrides, tmp_path) -> list[dict]:
    files = sorted((tmp_path / "out" / "default" / "pair_rationales").glob("*/d_h.jsonl"), key=lambda p: p.stat().st_mtime)
    return read_jsonl(files[-1])


def run_pr(tmp_path, pairs, *extra) -> tuple[dict, list[dict], Path]:
    cfg = compose(pr_overrides(tmp_path, pairs, *extra))
    m = run(cfg)
    from rationalign.stages.base import Context

    out = Context(cfg=cfg, workdir=tmp_path / "out" / "default").stage_dir("pair_rationales")
    return m, read_jsonl(out / "d_h.jsonl"), out


def run_align(tmp_path, pairs_file, loss):
    cfg = compose(["model=tiny", f"paths.root={tmp_path / 'out'}", "stage=align", f"align.pairs={pairs_file}",
                   "align.init=base", f"loss={loss}", "align.train.batch_size=4", "align.train.max_steps=2",
                   "align.train.logging_steps=1"])
    return run(cfg)


@pytest.fixture
def dh_file(tmp_path):
    return write_jsonl(tmp_path / "d_h.jsonl", dh_rows())


# ------------------------------------------------------------------------------------ units
def test_order_is_seeded_per_pair_and_balanced():
    ids = [f"x{i}" for i in range(400)]
    first = [chosen_first("random", 42, i) for i in ids]
    assert first == [chosen_first("random", 42, i) for i in ids]          # reproducible
    assert 0.4 < sum(first) / len(first) < 0.6                           # balanced-ish
    assert first != [chosen_first("random", 7, i) for i in ids]           # the seed matters
    assert all(chosen_first("chosen_first", 1, i) for i in ids[:5])
    assert not any(chosen_first("rejected_first", 1, i) for i in ids[:5])


@pytest.mark.parametrize("n", [2, 3, 7, 50])
def test_permute_is_a_derangement_keeping_the_multiset(n):
    ids = [f"i{k}" for k in range(n)]
    texts = [f"rationale {k}" for k in range(n)]
    for seed in range(20):
        moved, perm = permute(ids, texts, seed)
        assert sorted(moved) == sorted(texts)
        assert all(moved[k] != texts[k] for k in range(n)) and all(p != k for k, p in enumerate(perm))
        assert moved == [texts[p] for p in perm]
    assert permute(ids, texts, 3) == permute(ids, texts, 3)


def test_permute_needs_two_pairs():
    import random

    with pytest.raises(ValueError, match="at least 2 pairs"):
        derangement(1, random.Random(0))


def _view(i, first=True):
    src, w, lo = TRIPLES[i]
    return PairView(f"p{i}", f"Fix the grammar:\n\nText: {src}", w, lo, first, "gec", "Fix the grammar:", src, w, lo)


def test_template_names_the_edits_and_opposite_swaps_roles():
    views = [_view(0, True), _view(1, False)]
    normal = template_rationales(views)
    assert normal[0].startswith("Response A is better than Response B.")
    assert 'Response A corrects "go" to "goes"' in normal[0] and "subject-verb agreement" in normal[0]
    assert "which Response B leaves unchanged" in normal[0]
    assert normal[1].startswith("Response B is better than Response A.")   # chosen shown second
    assert 'Response B corrects "have" to "has"' in normal[1]
    opp = template_rationales(views, opposite=True)
    # The rejected response is argued for: its label is the preferred one, its edits are described.
    assert opp[0].startswith("Response B is better than Response A.")
    assert 'Response B keeps "go", which Response A changes to "goes"' in opp[0]
    assert opp[1].startswith("Response A is better than Response B.")
    assert 'Response A keeps "have", which Response B changes to "has"' in opp[1]


def test_template_without_source_diffs_the_responses():
    v = PairView("u", "Fix: she like cats", "She likes cats.", "She like cats.", False)
    (text,) = template_rationales([v])
    assert text.startswith("Response B is better than Response A.")
    assert 'Response B has "likes" where Response A has "like"' in text


def test_llm_prompts_follow_order_style_and_opposite():
    v = _view(0, first=False)  # chosen is Response B
    pc = PairTeacherConfig(style="general")
    (p,) = generation_prompts(pc, [v])
    assert "Response B is preferred over Response A" in p and "in general terms" in p
    assert p.index(v.rejected) < p.index(v.chosen)           # shown in the recorded order
    pc = PairTeacherConfig(style="detailed", ablation="opposite")
    (p,) = generation_prompts(pc, [v])
    assert "Response A is preferred over Response B" in p and "concrete words" in p


def test_local_source_uses_the_generator_and_reports_empty_answers():
    class Fake:
        def __init__(self):
            self.calls = []

        def generate(self, prompts, **kw):
            self.calls.append((len(prompts), kw))
            return ["Rationale: fine." if "goes" in p else "  " for p in prompts]

    fake = Fake()
    pc = PairLocalConfig(batch_size=1)
    out, failed, audit = from_local(pc, [_view(0), _view(1)], generator=fake)
    assert out == ["fine.", None] and list(failed) == [1] and len(audit) == 2
    assert fake.calls == [(1, {"temperature": 0.0, "max_new_tokens": 192})] * 2


def test_config_errors_are_one_line():
    with pytest.raises(ValueError, match=r"pair_rationale\.tmeplate: unknown key"):
        parse_pair_rationale_config({"name": "template", "tmeplate": 1})
    with pytest.raises(ValueError, match=r"pair_rationale\.api_key: secrets are never read"):
        parse_pair_rationale_config({"name": "teacher", "api_key": "sk-x"})
    with pytest.raises(ValueError, match="cannot be turned around"):
        parse_pair_rationale_config({"name": "file", "path": "x", "ablation": "opposite"})
    with pytest.raises(ValueError, match=r"lacks placeholder\(s\) \['\{preferred\}'\]"):
        parse_pair_rationale_config({"condition_template": "{response_a} {response_b}"})


def test_yaml_prompts_match_the_dataclass_defaults():
    t = yaml.safe_load((CONF / "template.yaml").read_text())
    te = yaml.safe_load((CONF / "teacher.yaml").read_text())
    assert t["condition_template"] == PairTemplateConfig().condition_template
    d = PairTeacherConfig()
    assert te["general_prompt"] == d.general_prompt and te["detailed_prompt"] == d.detailed_prompt


def test_each_source_checks_only_its_own_options():
    """A source's typed options are its own: template takes no endpoint, file no prompts."""
    assert PAIR_SOURCES.names() == ["file", "local", "teacher", "template"]
    assert type(parse_pair_rationale_config({"name": "local", "batch_size": 2})) is PairLocalConfig
    with pytest.raises(ValueError, match=r"pair_rationale\.base_url: unknown key"):
        parse_pair_rationale_config({"name": "template", "base_url": "http://x"})
    with pytest.raises(ValueError, match=r"pair_rationale\.style: unknown key"):
        parse_pair_rationale_config({"name": "file", "path": "x", "style": "general"})
    with pytest.raises(ValueError, match=r"pair_rationale\.batch_size=many: wrong type"):
        parse_pair_rationale_config({"name": "local", "batch_size": "many"})
    with pytest.raises(ValueError, match=r"pair_rationale\.name='gpt': expected one of file, local"):
        parse_pair_rationale_config({"name": "gpt"})


# ------------------------------------------------------------------------------------ stage + align
@pytest.mark.parametrize("loss", ["rdpo", "rorpo"])
def test_template_then_align(dh_file, tmp_path, loss):
    m, rows, out = run_pr(tmp_path, dh_file)
    assert m["counts"]["pairs"] == m["counts"]["with_rationale"] == 10 and m["counts"]["failed"] == 0
    for r in rows:
        meta = r["meta"]["pair_rationale"]
        cp = meta["condition_prompt"]
        w_lab, l_lab = meta["labels"]["chosen"], meta["labels"]["rejected"]
        assert {w_lab, l_lab} == {"A", "B"} and (w_lab == "A") == (meta["order"] == "chosen_first")
        assert cp.index(f"Response {w_lab}:\n{r['chosen']}") >= 0 and cp.index(f"Response {l_lab}:\n{r['rejected']}") >= 0
        assert cp.endswith(f"Response {w_lab} is better than Response {l_lab}. Explain why.")
        assert r["rationale"].startswith(f"Response {w_lab} is better than Response {l_lab}.")
        assert r["chosen_reward"] == 0.9 and r["source"]  # the input row is kept
    assert sum(Counter(r["meta"]["pair_rationale"]["order"] for r in rows).values()) == 10
    am = run_align(tmp_path, out / "d_h.jsonl", loss)
    assert am["counts"]["with_rationale"] == 10 and am["metrics"]["steps"] == 2
    assert am["metrics"]["loss"] == loss


def test_file_source_then_align_and_missing_ids(dh_file, tmp_path):
    rat = write_jsonl(tmp_path / "r.jsonl", [{"id": f"p{i:02d}", "rationale": f"Hand-written reason {i}."}
                                             for i in range(10) if i != 3])
    with pytest.raises(RuntimeError, match=r"1/10 pair\(s\) got no rationale: p03: pair id not found"):
        run_pr(tmp_path, dh_file, "pair_rationale=file", f"pair_rationale.path={rat}")
    m, rows, out = run_pr(tmp_path, dh_file, "pair_rationale=file", f"pair_rationale.path={rat}",
                          "pair_rationale.on_error=skip")
    assert m["counts"]["with_rationale"] == 9 and m["failures"] == [{"id": "p03", "error": f"pair id not found in {rat}"}]
    assert [r["rationale"] for r in rows] == [f"Hand-written reason {i}." for i in range(10) if i != 3]
    assert run_align(tmp_path, out / "d_h.jsonl", "rdpo")["counts"]["with_rationale"] == 9


def test_permute_and_opposite_change_exactly_what_they_claim(dh_file, tmp_path):
    _, base, _ = run_pr(tmp_path, dh_file)
    _, perm, out = run_pr(tmp_path, dh_file, "pair_rationale.ablation=permute")
    by_id = {r["id"]: r for r in base}
    assert sorted(r["rationale"] for r in perm) == sorted(r["rationale"] for r in base)   # same multiset
    for r in perm:
        src = r["meta"]["pair_rationale"]["permuted_from"]
        assert src != r["id"] and r["rationale"] == by_id[src]["rationale"]   # none stays; recorded
        assert r["rationale"] != by_id[r["id"]]["rationale"]
        # everything but the rationale is untouched, including what r is scored under
        assert r["meta"]["pair_rationale"]["condition_prompt"] == by_id[r["id"]]["meta"]["pair_rationale"]["condition_prompt"]
        assert {k: v for k, v in r.items() if k not in ("rationale", "meta")} == \
            {k: v for k, v in by_id[r["id"]].items() if k not in ("rationale", "meta")}
    assert sorted(json.loads((out / "permutation.json").read_text())["receiver_from"]) == \
        sorted([r["id"], r["meta"]["pair_rationale"]["permuted_from"]] for r in perm)
    _, opp, _ = run_pr(tmp_path, dh_file, "pair_rationale.ablation=opposite")
    for r in opp:
        meta = r["meta"]["pair_rationale"]
        w_lab, l_lab = meta["labels"]["chosen"], meta["labels"]["rejected"]
        assert r["rationale"].startswith(f"Response {l_lab} is better than Response {w_lab}.")
        assert meta["condition_prompt"] == by_id[r["id"]]["meta"]["pair_rationale"]["condition_prompt"]
    # the rejected response's own edits are named as the preferred ones
    p0 = next(r for r in opp if r["id"] == "p00")
    lab = p0["meta"]["pair_rationale"]["labels"]
    assert f'Response {lab["rejected"]} keeps "go", which Response {lab["chosen"]} changes to "goes"' in p0["rationale"]


def test_teacher_via_local_server_with_faults_then_align(dh_file, tmp_path):
    with ChatServer(retry_after="0") as srv:
        srv.inject("429", "500")                                     # HTTP retries in the client
        # an empty answer (the client retries it as a malformed response)
        srv.rule = lambda prompt, n: "empty" if "They was late" in prompt and n == 1 else None
        ov = ["pair_rationale=teacher", f"pair_rationale.base_url={srv.base_url}", "pair_rationale.api_key_env=null",
              "pair_rationale.backoff_base_s=0.01", f"pair_rationale.cache_dir={tmp_path / 'cache'}",
              "pair_rationale.style=general", "pair_rationale.ablation=opposite", "pair_rationale.concurrency=2"]
        m, rows, out = run_pr(tmp_path, dh_file, *ov)
        assert m["counts"]["with_rationale"] == 10 and srv.faults_served >= 3
        first = [p for p in srv.prompts if "Rationale:" in p]
        assert len(first) >= 10
        for r in rows:
            lab = r["meta"]["pair_rationale"]["labels"]
            asked = next(p for p in first if r["chosen"] in p)
            assert f"Response {lab['rejected']} is preferred over Response {lab['chosen']}" in asked  # opposite
            assert r["rationale"].startswith("explanation ") and r["meta"]["pair_rationale"]["style"] == "general"
        audit = read_jsonl(out / "requests.jsonl")
        assert len(audit) == 10 and all(a["error"] is None and a["raw"] for a in audit)
        assert sum(1 for p in srv.prompts if "They was late" in p) == 2
        n = srv.requests
        assert run_align(tmp_path, out / "d_h.jsonl", "rorpo")["counts"]["with_rationale"] == 10
        # a changed option that leaves the prompts alone: new stage dir, every answer from the cache
        run_pr(tmp_path, dh_file, *ov, "pair_rationale.max_edits=3")
        assert srv.requests == n


def test_user_layout_pairs(tmp_path):
    path = write_jsonl(tmp_path / "u.jsonl", [
        {"prompt": "Fix the grammar: she like cats", "chosen": "She likes cats.", "rejected": "She like cats."},
        {"prompt": "Fix the grammar: he go home", "chosen": "He goes home.", "rejected": "He goed home."}])
    _, rows, _ = run_pr(tmp_path, path)
    assert [r["id"] for r in rows] == ["line-1", "line-2"]
    assert rows[0]["meta"]["pair_rationale"]["condition_prompt"].startswith("Fix the grammar: she like cats\n\nResponse A:")
    lab = rows[0]["meta"]["pair_rationale"]["labels"]
    assert f'Response {lab["chosen"]} has "likes" where Response {lab["rejected"]} has "like"' in rows[0]["rationale"]


def test_upstreams_follow_the_config(tmp_path, dh_file):
    from rationalign.components import import_components
    from rationalign.stages.base import STAGES

    import_components()
    assert STAGES.get("pair_rationales").upstream_of(compose(["stage=pair_rationales"])) == ("pairs",)
    assert STAGES.get("pair_rationales").upstream_of(compose(pr_overrides(tmp_path, dh_file))) == ()
    assert STAGES.get("judge").upstream_of(compose(["stage=judge"])) == ("evaluate",)


def test_align_scores_r_under_the_recorded_prompt(dh_file, tmp_path, monkeypatch):
    """align scores r under meta.pair_rationale.condition_prompt (responses in the recorded order)."""
    from rationalign.training import preference as P
    from rationalign.training.pairs_io import PrefPair, load_pref_pairs

    assert "rationale_prompt" in PrefPair.__dataclass_fields__
    _, rows, out = run_pr(tmp_path, dh_file)
    pairs = load_pref_pairs(out / "d_h.jsonl", need_rationale=True)
    monkeypatch.setattr(P, "encode_pair", lambda tok, msg, completion, max_length, **kw: (msg, completion))
    from rationalign.training.chat import Layout

    ds = P.encode_preference(pairs, None, ["x"] * len(pairs), 128, with_rationale=True, layout=Layout())
    for row, r in zip(ds.rows, rows):
        assert row["x_prompt"] == r["meta"]["pair_rationale"]["condition_prompt"] and row["x_ids"] == r["rationale"]
