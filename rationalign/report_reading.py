"""The report's "What this run shows" paragraph: the run's own numbers read out in plain words for a
newcomer, wrong-way and inconclusive results included (nothing here is a fixed claim)."""

from __future__ import annotations

NAMES = {"base": "the base model (zero-shot)", "sft_no_rationale": "SFT", "sft": "SFT(R)",
         "aligned": "the aligned model", "aligned_no_rationale": "the aligned model without rationale"}


def _name(system: str) -> str:
    return NAMES.get(system, system)


def reward_model_sentence(rm: dict | None) -> str | None:
    if not rm:
        return None
    if not rm.get("heldout_pairs"):
        return "The reward model was not checked on held-out pairs (none were held out), so its quality is unknown."
    acc, (lo, hi), n, k = rm["heldout_accuracy"], rm["heldout_accuracy_ci"], rm["heldout_pairs"], rm["heldout_inputs"]
    gap = rm.get("heldout_min_metric_gap") or 0.0
    which = f" (pairs whose metric scores differ by more than {gap:g})" if gap else ""
    s = (f"On {n} K-fold pairs{which} from {k} inputs it never trained on, the reward model preferred the "
         f"suggestion with the higher task metric {100 * acc:.1f}% of the time "
         f"(95% CI {100 * lo:.1f}% to {100 * hi:.1f}%); ")
    if lo > 0.5:
        return s + "the whole interval is above 0.5, so it ranks unseen suggestions better than chance."
    if hi < 0.5:
        return s + ("the whole interval is below 0.5: it ranks unseen suggestions the wrong way round more often "
                    "than not, so alignment on its rewards pushes against the metric.")
    return s + "the interval includes 0.5, so this run cannot tell it from chance (inconclusive)."


def reward_shift_sentence(systems: dict) -> str | None:
    a, b = (systems.get("aligned") or {}).get("mean_reward"), (systems.get("sft") or {}).get("mean_reward")
    if a is None or b is None:
        return None
    way = "higher than" if a > b else "lower than" if a < b else "the same as"
    s = f"The aligned model's test outputs get a mean reward of {a:.3f}, {way} SFT(R)'s {b:.3f}"
    base = (systems.get("base") or {}).get("mean_reward")
    if base is not None:
        s += f" (base zero-shot, reported apart: {base:.3f})"
    if a > b:
        return s + "; alignment moved the policy towards what the reward model prefers."
    return s + "; alignment did not move the policy towards what the reward model prefers."


def comparison_sentence(label: str, cells: dict[str, dict]) -> str:
    """cells: column -> {"a", "b", "score_a", "score_b", "p", "p_lower", "n"} for one comparison."""
    first = cells[next(iter(cells))]
    a, b = _name(first["a"]), _name(first["b"])
    higher = [c for c, v in cells.items() if v["score_a"] > v["score_b"]]
    lower = [c for c, v in cells.items() if v["score_a"] < v["score_b"]]
    sig_hi = [c for c, v in cells.items() if v["p"] < 0.05]
    # "significantly lower" from the other tail: identical outputs give p = 1 in both directions
    sig_lo = [c for c, v in cells.items() if v.get("p_lower", 1.0 - v["p"]) < 0.05]
    s = (f"{a[0].upper() + a[1:]} against {b} ({label}; corpus metric, sign test with bootstrap resampling): higher on {len(higher)} of {len(cells)} columns"
         f"{' (' + ', '.join(higher) + ')' if higher else ''}, lower on {len(lower)}"
         f"{' (' + ', '.join(lower) + ')' if lower else ''}; ")
    parts = []
    if sig_hi:
        parts.append(f"significantly higher (one-tailed p < 0.05) on {', '.join(sig_hi)}")
    if sig_lo:
        parts.append(f"significantly lower (one-tailed p < 0.05 the other way) on {', '.join(sig_lo)}")
    if not parts:
        parts.append("no column differs significantly at this test size")
    return s + "; ".join(parts) + "."


def all_sentence(rows: list[dict]) -> str | None:
    vals = [(r["system"], r["ALL"]) for r in rows if r.get("ALL") is not None]
    if not vals:
        return None
    return "ALL (mean over columns): " + ", ".join(f"{_name(s)} {v:.1f}" for s, v in vals) + "."


def what_this_run_shows(rows: list[dict], summary: dict) -> str:
    sentences = [reward_model_sentence(summary.get("reward_model")), reward_shift_sentence(summary.get("systems") or {})]
    by_label: dict[str, dict[str, dict]] = {}
    for col, comps in (summary.get("significance") or {}).items():
        for label, cell in comps.items():
            by_label.setdefault(label, {})[col] = cell
    sentences += [comparison_sentence(label, cells) for label, cells in by_label.items()]
    sentences.append(all_sentence(rows))
    return " ".join(s for s in sentences if s)
