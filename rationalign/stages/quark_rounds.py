"""One QUARK round's data: the policy's samples, the gold seed rows, their rewards, the per-round
evaluation and the best-vs-worst-bin contrast check (stage=quark)."""

from __future__ import annotations

from rationalign.data.records import Record
from rationalign.stages.common import completion, position, user_message, with_rationale
from rationalign.stages.quark_policy import policy_engine


def sample_round(cfg, model, tok, records: list[Record], prefix: str, round_idx: int) -> list[dict]:
    from rationalign.stages.sample import parse_candidates

    q = cfg.quark
    msgs = [user_message(cfg, r) for r in records]
    with policy_engine(cfg, model, tok) as engine:
        texts = engine.sample([prefix + m for m in msgs], n=int(q.samples_per_input),
                              temperature=float(q.temperature), top_p=float(q.top_p), top_k=int(q.top_k),
                              max_new_tokens=int(q.max_new_tokens), seed=int(cfg.seed) + round_idx)
    rows = []
    for r, m, outs in zip(records, msgs, texts):
        for c in parse_candidates(cfg, outs):
            rows.append({"id": r.id, "round": round_idx, "origin": "policy", "user_message": m,
                         "completion": c["text"], "suggestion": c["suggestion"] or "",
                         "rationale": c["rationale"], "ok": c["ok"]})
    return rows


def gold_rows(cfg, records: list[Record]) -> list[dict]:
    """The training data itself (gold suggestion + distilled rationale) as round-0 pool items."""
    return [{"id": r.id, "round": 0, "origin": "gold", "user_message": user_message(cfg, r),
             "completion": completion(cfg, r.target, r.rationale), "suggestion": r.target,
             "rationale": r.rationale, "ok": True} for r in records if r.target and r.rationale]


def score_rows(rewards, rows: list[dict], by_id: dict[str, Record]) -> None:
    from rationalign.quark.rewards import Sample, score_all

    samples = [Sample(by_id[x["id"]], x["suggestion"], x["rationale"], x["ok"], x["completion"]) for x in rows]
    scores = score_all(rewards, samples)
    for i, x in enumerate(rows):
        x["rewards"] = {k: v[i] for k, v in scores.items()}


def evaluate_round(cfg, model, tok, records: list[Record], prefix: str) -> dict:
    """Greedy outputs on the eval split with the best-bin prefix; mean sentence-level task metric."""
    from omegaconf import OmegaConf

    from rationalign.prompts import parse_response
    from rationalign.scoring import sentence_score

    if not records:
        return {}
    pos = position(cfg) if with_rationale(cfg) else "none"
    marker = OmegaConf.select(cfg, "prompts.response.rationale_marker") or "Explanation:"
    with policy_engine(cfg, model, tok) as engine:
        outs = engine.generate([prefix + user_message(cfg, r) for r in records], temperature=0,
                               max_new_tokens=int(cfg.quark.eval_max_new_tokens),
                               stop=[marker] if pos == "after" else None)
    per: dict[str, list[float]] = {}
    for r, o in zip(records, outs):
        p = parse_response(o, pos, cfg.prompts)
        per.setdefault(r.task, []).append(sentence_score(cfg.task.specs[r.task], r, p.suggestion or r.source))
    res = {t: sum(v) / len(v) for t, v in per.items()}
    res["mean"] = sum(res.values()) / len(res)
    res["n"] = len(records)
    return res


def contrast_check(cfg, model, tok, rewards, records: list[Record], active: list[str], order: list[str],
                   n_bins: int, round_idx: int) -> dict:
    """Reward means of samples drawn under the best-bin and under the worst-bin prefix, on the same
    inputs with the same seed. No gap means the control tokens do not steer the policy yet, and
    round-over-round changes are not a QUARK effect."""
    from rationalign.quark.control import control_prefix

    recs = records[: int(cfg.quark.contrast_inputs)]
    by_id = {r.id: r for r in recs}
    res = {}
    for name, b in (("best", n_bins - 1), ("worst", 0)):
        rows = [x for x in sample_round(cfg, model, tok, recs, control_prefix(dict.fromkeys(active, b), order), round_idx)
                if x["completion"].strip()]
        score_rows(rewards, rows, by_id)
        res[name] = reward_means(rows, list(rewards))
        res[f"{name}_samples"] = len(rows)
    res["inputs"] = len(recs)
    return res


def reward_means(rows: list[dict], names: list[str]) -> dict[str, float]:
    return {k: sum(x["rewards"][k] for x in rows) / len(rows) for k in names} if rows else {}


def train_prompt(x: dict, bins: dict, order: list[str]) -> str:
    from rationalign.quark.control import control_prefix

    return control_prefix(bins, order) + x["user_message"]
