"""The results table in the layout of the paper's Table 1, as Markdown, CSV and JSON.

Columns: CoN, ITR-F, ITR-L, ITR-O, STS, WNC, AST, GYAFC-EM, GYAFC-FR (BLEU / ACC), ALL. ALL averages
the columns a system has, using BLEU only for GYAFC (as the paper does). A column without test data
is shown as N.A., never dropped.
"""

from __future__ import annotations

import csv
import io
import json
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


def write_report(out_dir: Path, name: str, results: dict[str, dict[str, dict]], extra: dict | None = None) -> str:
    rows = build_table(results)
    md = to_markdown(rows)
    if extra:
        md += "\n" + analyses_markdown(extra)
    atomic_write_text(out_dir / f"{name}.md", md)
    atomic_write_text(out_dir / f"{name}.csv", to_csv(rows))
    atomic_write_json(out_dir / f"{name}.json", {"rows": rows, "results": results, "analyses": extra or {}})
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
    rm = extra.get("reward_model")
    if rm:
        out += ["### Reward-model quality (paper Sec. 5: 88% agreement, Pearson 0.63)", "",
                f"- inputs compared: {rm['inputs']} (ties dropped: {rm['ties']})",
                f"- share where metric(s_w) > metric(s_l): {_pct(rm.get('agreement'))}",
                f"- Pearson(reward, metric) over {rm['points']} suggestions: {_num(rm.get('pearson'))}", ""]
    for col, tk in (extra.get("m2_tokenization") or {}).items():
        out += [f"{col} (M2 scoring): {m2_tokenization_line(tk)}", ""]
    ed = extra.get("edits")
    if ed:
        out += ["### Edits proposed and their precision (paper Fig. 7 right)", "",
                "| System | edits proposed | correct | precision |", "|---|---|---|---|"]
        for system, e in ed.items():
            out.append(f"| {system} | {e['proposed']} | {e['tp']} | {_pct(e['precision'])} |")
        out.append("")
    out += faithfulness_markdown(extra.get("faithfulness"))
    return "\n".join(out) + "\n"


def faithfulness_markdown(fa: dict | None) -> list[str]:
    """Per system: edit coverage / rationale precision per task and overall (metrics/faithfulness.py)."""
    if not fa:
        return []
    tasks = sorted({t for res in fa.values() if res for t in res["per_task"]})
    out = ["### Rationale faithfulness: edit coverage / rationale precision", "",
           "| System | " + " | ".join([*tasks, "overall"]) + " |", "|" + "---|" * (len(tasks) + 2)]
    for system, res in fa.items():
        if res is None:
            out.append(f"| {system} | " + " | ".join([NA] * (len(tasks) + 1)) + " |")
            continue
        cells = [res["per_task"].get(t) for t in tasks] + [res["overall"]]
        out.append(f"| {system} | " + " | ".join(
            NA if c is None else f"{_pct(c['coverage'])} / {_pct(c['precision'])}" for c in cells) + " |")
    out += ["", ("Coverage: share of the suggestion's edits (ERRANT) that an explanation names; precision: share "
                 "of the explanations naming an edit that name one the suggestion makes. N.A.: nothing to count "
                 "(no edits, no explanation naming one, or no rationale stored)."), ""]
    return out


def _pct(x: float | None) -> str:
    return NA if x is None else f"{100 * x:.1f}%"


def _num(x: float | None) -> str:
    return NA if x is None else f"{x:.3f}"


def load_report(path: Path) -> dict:
    return json.loads(Path(path).read_text())
