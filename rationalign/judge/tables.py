"""Judge results as Markdown tables (and the same numbers as JSON, written by the stage)."""

from __future__ import annotations


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _ci(ci, scale: float = 100.0, fmt: str = "{:.1f}") -> str:
    return "" if not ci else " [" + fmt.format(scale * ci[0]) + ", " + fmt.format(scale * ci[1]) + "]"


def render(results: dict, meta: dict) -> str:
    level = round(100 * meta["ci_level"])
    lines = [f"# LLM judge ({meta['model']}, k={meta['k']})", ""]
    if results.get("pairwise"):
        lines += [f"## Pairwise win rate (A vs B, {level}% CI; per input: mean of k verdicts)", "",
                  ("| A | B | inputs | win | tie | loss | win rate % | tie % | loss % | score (win=1, tie=.5) "
                   "| judgements | unparsed | failed | A shown first % |"),
                  "|---|---|---:|---:|---:|---:|---|---|---|---|---:|---:|---:|---:|"]
        for r in results["pairwise"]:
            score = "-" if r["score"] is None else f"{r['score']:.3f}" + _ci(r["score_ci"], 1.0, "{:.3f}")
            lines.append(
                f"| {r['a']} | {r['b']} | {r['items']} | {r['win']} | {r['tie']} | {r['loss']} "
                f"| {_pct(r['win_rate'])}{_ci(r['win_rate_ci'])} | {_pct(r['tie_rate'])}{_ci(r['tie_rate_ci'])} "
                f"| {_pct(r['loss_rate'])}{_ci(r['loss_rate_ci'])} "
                f"| {score} | {r['judgements']} | {r['unparsed']} | {r['failed']} "
                f"| {_pct(r['a_first_fraction'])} |")
        lines.append("")
    if results.get("rubric"):
        aspects = meta["aspects"]
        lines += [f"## Rubric scores (1-5, mean [{level}% bootstrap CI])", "",
                  "| system | " + " | ".join(aspects) + " | scored | unparsed | failed |",
                  "|---|" + "---|" * len(aspects) + "---:|---:|---:|"]
        for system, r in results["rubric"].items():
            cells = []
            for a in aspects:
                s = r["aspects"][a]
                cells.append("-" if s["mean"] is None else f"{s['mean']:.2f}{_ci(s['ci'], 1.0, '{:.2f}')}")
            lines.append(f"| {system} | " + " | ".join(cells) + f" | {r['scored']} | {r['unparsed']} | {r['failed']} |")
        lines.append("")
    if results.get("rationale_accuracy"):
        lines += [f"## Rationale accuracy (judge vs the edits actually made, {level}% Wilson CI)", "",
                  "| system | checked | accurate | accuracy % | unparsed | failed | no rationale |",
                  "|---|---:|---:|---|---:|---:|---:|"]
        for system, r in results["rationale_accuracy"].items():
            lines.append(f"| {system} | {r['checked']} | {r['accurate']} | {_pct(r['accuracy'])}{_ci(r['accuracy_ci'])} "
                         f"| {r['unparsed']} | {r['failed']} | {r['no_rationale']} |")
        lines.append("")
    return "\n".join(lines)
