"""The results table in the layout of the paper's Table 1, as Markdown, CSV and JSON.

Columns: CoN, ITR-F, ITR-L, ITR-O, STS, WNC, AST, GYAFC-EM, GYAFC-FR (BLEU / ACC), ALL. ALL averages
the columns a system has, using BLEU only for GYAFC (as the paper does). A column without test data
is shown as N.A., never dropped.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from rationalign.io import atomic_write_json, atomic_write_text

COLUMNS = ["CoN", "ITR-F", "ITR-L", "ITR-O", "STS", "WNC", "AST", "GYAFC-EM", "GYAFC-FR"]
NA = "N.A."


def _cell(c: dict | None, digits: int = 1, sep: str = " / ") -> str:
    """One table cell: the score, or BLEU / formality accuracy for GYAFC."""
    if c is None:
        return NA
    if "formality" in c:
        return f"{c['score']:.{digits}f}{sep}{c['formality']:.{digits}f}"
    return f"{c['score']:.{digits}f}"


def all_average(cells: dict[str, dict]) -> float | None:
    vals = [cells[c]["score"] for c in COLUMNS if c in cells]
    return sum(vals) / len(vals) if vals else None


def build_table(results: dict[str, dict[str, dict]]) -> list[dict[str, Any]]:
    """results[system][column] = {'score': .., 'formality': ..?, 'n': ..} -> rows for every format."""
    rows = []
    for system, cells in results.items():
        avg = all_average(cells)
        row = {"system": system, **{c: cells.get(c) for c in COLUMNS}, "ALL": avg,
               "ALL_columns": sum(1 for c in COLUMNS if c in cells)}
        rows.append(row)
    return rows


def to_markdown(rows: list[dict], title: str = "Results (paper Table 1 layout)") -> str:
    head = ["System", *COLUMNS, "ALL"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        all_txt = NA if r["ALL"] is None else f"{r['ALL']:.1f}"
        if r["ALL"] is not None and r["ALL_columns"] < len(COLUMNS):
            all_txt += f" ({r['ALL_columns']}/{len(COLUMNS)})"
        lines.append("| " + " | ".join([r["system"], *(_cell(r[c]) for c in COLUMNS), all_txt]) + " |")
    lines += ["", ("GYAFC cells are BLEU / formality accuracy; ALL uses BLEU for GYAFC and averages the "
                   "columns present (count in brackets when some are N.A.).")]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["system", *COLUMNS, "ALL"])
    for r in rows:
        w.writerow([r["system"], *(_cell(r[c], 4, "/") for c in COLUMNS), NA if r["ALL"] is None else f"{r['ALL']:.4f}"])
    return buf.getvalue()


def summary_keys(extra: dict) -> dict:
    """The report.json keys outside checks read: reward_model.heldout_accuracy (0-1),
    .heldout_accuracy_ci ([lo, hi]), .heldout_pairs, and systems.<name>.mean_reward."""
    rm = extra.get("reward_model") or {}
    scores = rm.get("systems") or {}
    systems = {name: {"description": desc, "mean_reward": (scores.get(name) or {}).get("mean_reward"),
                      "mean_metric": (scores.get(name) or {}).get("mean_metric")}
               for name, desc in (extra.get("systems") or {}).items()}
    reward_model = {k: rm.get(k) for k in ("heldout_accuracy", "heldout_accuracy_ci", "heldout_pairs",
                                           "heldout_inputs", "heldout_min_metric_gap")} if rm else None
    return {"reward_model": reward_model, "systems": systems, "significance": extra.get("significance") or {}}


def write_report(out_dir: Path, name: str, results: dict[str, dict[str, dict]], extra: dict | None = None) -> str:
    from rationalign.report_reading import what_this_run_shows

    rows = build_table(results)
    extra = extra or {}
    summary = summary_keys(extra)
    md = to_markdown(rows)
    if extra:
        md += "\n" + analyses_markdown(extra)
        md += "\n### What this run shows\n\n" + what_this_run_shows(rows, summary) + "\n"
    atomic_write_text(out_dir / f"{name}.md", md)
    atomic_write_text(out_dir / f"{name}.csv", to_csv(rows))
    atomic_write_json(out_dir / f"{name}.json", {"rows": rows, "results": results, **summary, "analyses": extra})
    return md


def m2_tokenization_line(tk: dict) -> str:
    """How a CoNLL-style M2 column was read and scored (rationalign.tokenization)."""
    seen = f"detokenised ({tk['detokenize']})" if tk["detokenize"] != "none" else "tokenised as in the M2 file"
    if tk["retokenize"] == "none":
        return f"the model read {seen} text; its suggestions were scored as written."
    keep = ", words it left unchanged keeping the gold's tokens" if tk.get("keep_source_tokens") else ""
    return f"the model read {seen} text; its suggestions were retokenised ({tk['retokenize']}{keep})."


def analyses_markdown(extra: dict) -> str:
    out = []
    if extra.get("systems"):
        out += ["Systems:", ""] + [f"- **{k}**: {v}" for k, v in extra["systems"].items()] + [""]
    out += reward_model_markdown(extra.get("reward_model"))
    out += significance_markdown(extra.get("significance"))
    out += diagnostics_markdown(extra.get("diagnostics"))
    for col, tk in (extra.get("m2_tokenization") or {}).items():
        out += [f"{col} (M2 scoring): {m2_tokenization_line(tk)}", ""]
    ed = extra.get("edits")
    if ed:
        out += ["### Edits proposed and their precision (paper Fig. 7 right)", "",
                "| System | edits proposed | correct | precision |", "|---|---|---|---|"]
        for system, e in ed.items():
            out.append(f"| {system} | {e['proposed']} | {e['tp']} | {_pct(e['precision'])} |")
        out.append("")
    out += faithfulness_markdown(extra.get("faithfulness"), extra.get("rationale_decoding"))
    return "\n".join(out) + "\n"


_DECODING = {"free": "free (the model writes suggestion and rationale in one go, as in the paper)",
             "grounded": ("grounded (one sentence per edit the suggestion makes: its template prefix forced, "
                          "the reason written by the model; rationalign/rationale/grounded.py)")}


def faithfulness_markdown(fa: dict | None, decoding: str | None = None) -> list[str]:
    """Per system: edit coverage / rationale precision per task and overall (metrics/faithfulness.py),
    the overall cell with its number of edits; `decoding`: evaluate.rationale_decoding."""
    if not fa:
        return []
    tasks = sorted({t for res in fa.values() if res for t in res["per_task"]})
    out = ["### Rationale faithfulness: edit coverage / rationale precision", ""]
    if decoding:
        out += [f"Rationale decoding: {_DECODING.get(decoding, decoding)}.", ""]
    out += ["| System | " + " | ".join([*tasks, "overall"]) + " |", "|" + "---|" * (len(tasks) + 2)]
    for system, res in fa.items():
        if res is None:
            out.append(f"| {system} | " + " | ".join([NA] * (len(tasks) + 1)) + " |")
            continue
        cells = [f"{_pct(c['coverage'])} / {_pct(c['precision'])}" if c else NA
                 for c in [res["per_task"].get(t) for t in tasks]]
        o = res["overall"]
        cells.append(f"{_pct(o['coverage'])} / {_pct(o['precision'])}" + (f" ({o['edits']} edits)" if "edits" in o else ""))
        out.append(f"| {system} | " + " | ".join(cells) + " |")
    out += ["", ("Coverage: share of the suggestion's edits (ERRANT) that an explanation names; precision: share "
                 "of the explanations naming an edit that name one the suggestion makes. N.A.: nothing to count "
                 "(no edits, no explanation naming one, or no rationale stored)."), ""]
    return out


def reward_model_markdown(rm: dict | None) -> list[str]:
    if not rm:
        return []
    out = ["### Reward model (paper Sec. 5: 88% agreement, Pearson 0.63)", ""]
    if rm.get("heldout_pairs"):
        lo, hi = rm["heldout_accuracy_ci"]
        out.append(f"- held-out pairwise accuracy: {_pct(rm['heldout_accuracy'])} (95% CI {_pct(lo)} to {_pct(hi)}; "
                   f"{rm['heldout_pairs']} K-fold pairs from {rm['heldout_inputs']} inputs the RM never trained on; "
                   f"{rm.get('heldout_ci_method') or 'bootstrap'}{_gap_note(rm)})")
    else:
        out.append("- held-out pairwise accuracy: N.A. (no held-out pairs: reward.heldout_fraction=0 or too few inputs)")
    t = rm.get("test_outputs") or {}
    if t:
        per_task = ", ".join(f"{k} {_num(v)}" for k, v in (t.get("pearson_per_task") or {}).items()) or NA
        out += [(f"- test outputs of {', '.join(t['systems']) or 'no trained system'} (base zero-shot left out): "
                 f"share of {t['inputs']} inputs where the higher-reward suggestion has the higher metric: "
                 f"{_pct(t.get('agreement'))} (ties dropped: {t['ties']})"),
                (f"- Pearson(reward, metric) per task over {t['points']} suggestions: {per_task}; "
                 f"mean over tasks {_num(t.get('pearson_mean'))}")]
    systems = rm.get("systems") or {}
    if systems:
        out += ["", "| System | mean RM reward (test outputs) | mean sentence metric |", "|---|---|---|"]
        out += [f"| {s} | {v['mean_reward']:.3f} | {v['mean_metric']:.1f} |" for s, v in systems.items()]
    return out + [""]


def _gap_note(rm: dict) -> str:
    gap = rm.get("heldout_min_metric_gap") or 0.0
    return f"; only pairs whose metric scores differ by more than {gap:g} (reward.min_metric_gap)" if gap else ""


def significance_markdown(sig: dict | None) -> list[str]:
    """Per column and comparison: both corpus scores, the sign test's p and the paired bootstrap's p."""
    if not sig:
        return []
    first = next(iter(next(iter(sig.values())).values()))
    labels = list(dict.fromkeys(label for comps in sig.values() for label in comps))
    out = [(f"### Significance per column: one-tailed sign test with bootstrap resampling (the paper's test, "
           f"{first['resamples']} resamples) and paired bootstrap (Koehn 2004, {first['bootstrap']['resamples']} "
           "resamples); the corpus metric is recomputed on every resample"), "",
           "p is for \"the first system scores higher\": small p favours it; p_lower is the other direction.", "",
           "| Column | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for col in [c for c in COLUMNS if c in sig]:
        cells = []
        for label in labels:
            c = sig[col].get(label)
            cells.append(NA if c is None else (
                f"{c['score_a']:.2f} vs {c['score_b']:.2f}: sign test p={c['p']:.3g} "
                f"({c['wins']} wins, {c['losses']} losses, {c['ties']} ties), bootstrap p={c['bootstrap']['p']:.3g}; "
                f"p_lower={c['p_lower']:.3g} (n={c['n']})"))
        out.append(f"| {col} | " + " | ".join(cells) + " |")
    return out + [""]


def diagnostics_markdown(diag: dict | None) -> list[str]:
    if not diag:
        return []
    out: list[str] = []
    if diag.get("headroom"):
        out += ["### Reranking headroom (stage=headroom): corpus metric on held-out inputs with gold", "",
                ("greedy: the SFT model's greedy output; rm_best / rm_worst: the reward model's pick among M "
                "samples; oracle_best: the sample (or greedy) with the best sentence metric; sample_mean: one "
                "sample per input. rm_best above greedy is what alignment can distil."), "",
                ("| SFT model | column | inputs x M | greedy | sample_mean | rm_worst | rm_best | oracle_best | "
                "rm_best vs greedy |"), "|---|---|---|---|---|---|---|---|---|"]
        for system, t in diag["headroom"].items():
            for col, c in t["columns"].items():
                cmp_ = c["rm_best_vs_greedy"]
                out.append(f"| {system} | {col} ({c['metric']}, {t.get('split', '?')}) | {t['inputs']} x "
                           f"{t['samples_per_input']} | {c['greedy']:.2f} | {_num2(c.get('sample_mean'))} | "
                           f"{c['rm_worst']:.2f} | {c['rm_best']:.2f} | {c['oracle_best']:.2f} | "
                           f"{cmp_['delta']:+.2f}, sign test p={cmp_['p']:.3g}, bootstrap p={cmp_['bootstrap']['p']:.3g} |")
        out.append("")
    if diag.get("d_h"):
        out += ["### Preference pairs D_H (stage=pairs)", "",
                ("| aligned model | pairs kept / inputs scored | margin r_w - r_l: mean (p10 / p50 / p90) | "
                "r_w mean | r_l mean | words: winner / loser / source |"), "|---|---|---|---|---|---|"]
        for system, d in diag["d_h"].items():
            st, cn = d.get("stats") or {}, d.get("counts") or {}
            if not st.get("pairs"):
                out.append(f"| {system} | 0 | N.A. | N.A. | N.A. | N.A. |")
                continue
            mg = st["margin"]
            out.append(f"| {system} | {st['pairs']} / {cn.get('scored_inputs', '?')} of {cn.get('inputs', '?')} | "
                       f"{mg['mean']:.3f} ({mg['p10']:.3f} / {mg['p50']:.3f} / {mg['p90']:.3f}) | "
                       f"{st['chosen_reward_mean']:.3f} | {st['rejected_reward_mean']:.3f} | "
                       f"{st['chosen_words_mean']:.1f} / {st['rejected_words_mean']:.1f} / {st['source_words_mean']:.1f} |")
        out.append("")
    return out


def _num2(x: float | None) -> str:
    return NA if x is None else f"{x:.2f}"


def _pct(x: float | None) -> str:
    return NA if x is None else f"{100 * x:.1f}%"


def _num(x: float | None) -> str:
    return NA if x is None else f"{x:.3f}"
