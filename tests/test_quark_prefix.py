"""QUARK control prefixes reach the engine: the contrast check samples the same inputs under the
best-bin and the worst-bin tokens of every active reward, and stage=evaluate answers with a QUARK
policy's best-bin prefix. A fake engine records the prompts (the earlier contrast test passed with
the bin ignored)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from rationalign.data.records import Record
from rationalign.quark.control import control_token
from rationalign.runner import compose

RECS = [Record(id=f"q{i}", task="gec", instruction="Fix:", source=f"he go home {i} .", target=f"He goes home {i} .")
        for i in range(3)]


class FakeEngine:
    def __init__(self):
        self.sampled: list[list[str]] = []
        self.generated: list[list[str]] = []

    def sample(self, prompts, n, **kw):
        self.sampled.append(list(prompts))
        # what is sampled depends on the prefix: one word per best-bin token
        return [[" ".join(["word"] * (1 + p.count("_4|>")))] * n for p in prompts]

    def generate(self, prompts, **kw):
        self.generated.append(list(prompts))
        return ["He goes home ." for _ in prompts]


def test_contrast_samples_best_and_worst_bins_on_the_same_inputs(monkeypatch):
    from rationalign.stages import quark_rounds as Q

    cfg = compose(["model=tiny", "task=gec", "rationale.position=none", "quark.contrast_inputs=2",
                   "quark.samples_per_input=2"])
    engine = FakeEngine()

    @contextmanager
    def fake_policy_engine(*a, **k):
        yield engine

    monkeypatch.setattr(Q, "policy_engine", fake_policy_engine)
    monkeypatch.setattr(Q, "score_rows", lambda rewards, rows, by_id: [
        x.__setitem__("rewards", {k: float(len(x["completion"].split())) for k in rewards}) for x in rows])
    order = ["length", "diversity"]
    res = Q.contrast_check(cfg, None, None, {"length": None, "diversity": None}, RECS, active=order, order=order,
                           n_bins=5, round_idx=1)
    best, worst = engine.sampled
    best_prefix = control_token("length", 4) + control_token("diversity", 4)
    worst_prefix = control_token("length", 0) + control_token("diversity", 0)
    assert len(best) == len(worst) == 2
    assert all(p.startswith(best_prefix) for p in best) and all(p.startswith(worst_prefix) for p in worst)
    assert [p[len(best_prefix):] for p in best] == [p[len(worst_prefix):] for p in worst]  # same inputs
    assert res["inputs"] == 2 and res["best_samples"] == res["worst_samples"] == 4
    assert res["best"] == {"length": 3.0, "diversity": 3.0} and res["worst"] == {"length": 1.0, "diversity": 1.0}


def test_additive_contrast_uses_only_the_active_rewards(monkeypatch):
    from rationalign.stages import quark_rounds as Q

    cfg = compose(["model=tiny", "task=gec", "rationale.position=none", "quark.contrast_inputs=1"])
    engine = FakeEngine()

    @contextmanager
    def fake_policy_engine(*a, **k):
        yield engine

    monkeypatch.setattr(Q, "policy_engine", fake_policy_engine)
    monkeypatch.setattr(Q, "score_rows", lambda rewards, rows, by_id: [
        x.__setitem__("rewards", {k: 0.0 for k in rewards}) for x in rows])
    Q.contrast_check(cfg, None, None, {"length": None}, RECS, active=["length"], order=["diversity", "length"],
                     n_bins=3, round_idx=0)
    for prompts, token in zip(engine.sampled, (control_token("length", 2), control_token("length", 0))):
        assert prompts[0].startswith(token) and not prompts[0][len(token):].startswith("<|")  # no diversity token


def test_evaluate_prompts_a_quark_policy_with_its_best_bin_prefix(tmp_path, monkeypatch):
    import rationalign.engines as E
    import rationalign.quark.control as C
    from rationalign.stages import evaluate as V
    from rationalign.stages.base import Context

    cfg = compose(["model=tiny", "task=gec", "rationale.position=none", f"paths.root={tmp_path}"])
    ctx = Context(cfg=cfg, workdir=Path(cfg.paths.workdir))
    engine = FakeEngine()

    @contextmanager
    def fake_build_engine(*a, **k):
        yield engine

    prefix = control_token("task_metric", 4) + control_token("length", 4)
    monkeypatch.setattr(E, "build_engine", fake_build_engine)
    monkeypatch.setattr(V, "resolve_system", lambda ctx, name: (tmp_path / name, cfg))
    monkeypatch.setattr(C, "is_quark_dir", lambda d: d is not None and d.name == "quark")
    monkeypatch.setattr(C, "inference_prefix", lambda d: prefix)
    out = tmp_path / "eval"
    q = V.generate_predictions(ctx, out, "quark", RECS)
    s = V.generate_predictions(ctx, out, "sft", RECS)
    quark_prompts, sft_prompts = engine.generated
    assert all(p.startswith(prefix) for p in quark_prompts)
    assert [p[len(prefix):] for p in quark_prompts] == sft_prompts and not sft_prompts[0].startswith("<|quark")
    assert [r["suggestion"] for r in q["gec"]] == [r["suggestion"] for r in s["gec"]] == ["He goes home ."] * 3
