"""stage=pair_rationales: add a preference rationale r to every pair of a pairs file, for RDPO/RORPO.

Input: D_H from the pairs stage, or `pair_rationale.pairs=<file>` in the common {prompt, chosen,
rejected} layout (or the D_H layout). Output d_h.jsonl: every input row with `rationale` set and
`meta.pair_rationale` = {source, style, ablation, order, labels, condition_prompt[, permuted_from]},
where condition_prompt is the exact text the policy scores r under (responses in the recorded order).
`stage=align loss=rdpo|rorpo align.pairs=<that file>` consumes it.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from omegaconf import OmegaConf

from rationalign.io import atomic_write_json, atomic_write_jsonl
from rationalign.stages.base import Context, register_stage

log = logging.getLogger("rationalign")


def pr_options(cfg) -> dict:
    node = cfg.get("pair_rationale")
    return OmegaConf.to_container(node, resolve=True) if node is not None else {"name": "template"}


def pr_upstream(cfg) -> tuple[str, ...]:
    return () if pr_options(cfg).get("pairs") else ("pairs",)


def pr_inputs(cfg) -> list[str]:
    o = pr_options(cfg)
    files = [o["pairs"]] if o.get("pairs") else []
    if o.get("name") == "file" and o.get("path"):
        files.append(str(Path(o["path"]).expanduser()))
    return files


def _raw_rows(path: Path) -> list[dict]:
    """The rows as written (load_pref_pairs validated them first; blank lines skipped the same way)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_views(cfg, pc, path: Path):
    from rationalign.rationale.pairs import PairView, chosen_first
    from rationalign.stages.align import user_messages
    from rationalign.training.pairs_io import load_pref_pairs

    pairs = load_pref_pairs(path)
    raws = _raw_rows(path)
    if len(raws) != len(pairs):  # cannot happen with a validated file; guard the alignment anyway
        raise ValueError(f"{path}: {len(raws)} rows but {len(pairs)} pairs")
    msgs = user_messages(cfg, pairs, path)
    seed = int(cfg.seed)
    views = [PairView(id=p.id, prompt=m, chosen=p.chosen, rejected=p.rejected,
                      chosen_first=chosen_first(pc.order, seed, p.id), task=p.task, instruction=p.instruction,
                      source=p.source, chosen_suggestion=p.chosen_suggestion, rejected_suggestion=p.rejected_suggestion)
             for p, m in zip(pairs, msgs)]
    return views, raws


@register_stage(
    "pair_rationales",
    config_keys=("pair_rationale", "prompts", "task", "rationale.position", "rationale.name", "seed"),
    upstream=pr_upstream,
    input_files=pr_inputs,
    generates=lambda cfg: cfg.pair_rationale.name == "local",
)
def run_pair_rationales(ctx: Context, out: Path) -> dict:
    """Preference rationales for a pairs file (template | teacher | local | file; permute / opposite)."""
    from rationalign.rationale import local_generator
    from rationalign.rationale.pairs import condition_prompt, generate, parse_pair_rationale_config, permute

    cfg = ctx.cfg
    pc = parse_pair_rationale_config(pr_options(cfg))
    path = Path(pc.pairs).expanduser() if pc.pairs else ctx.require("pairs") / "d_h.jsonl"
    views, raws = build_views(cfg, pc, path)
    runtime = {}
    if pc.name == "local":
        runtime["generator"] = local_generator(cfg, pc.model)
    try:
        rationales, failed, audit = generate(pc, views, **runtime)
    finally:
        if "generator" in runtime:
            runtime["generator"].close()
    if audit:
        atomic_write_jsonl(out / "requests.jsonl", audit)
    failures = [{"id": views[i].id, "error": e} for i, e in sorted(failed.items())]
    if failures and pc.on_error == "fail":
        atomic_write_jsonl(out / "failures.jsonl", failures)
        head = "; ".join(f"{f['id']}: {f['error']}" for f in failures[:5])
        raise RuntimeError(f"stage pair_rationales: {len(failures)}/{len(views)} pair(s) got no rationale: {head} "
                           f"(pair_rationale.on_error=skip drops them, listed in the manifest)")
    keep = [i for i in range(len(views)) if i not in failed]
    if not keep:
        raise RuntimeError(f"stage pair_rationales: no pair got a rationale ({len(views)} pairs)")
    texts = [rationales[i] for i in keep]
    permuted_from: dict[int, str] = {}
    permutation = None
    if pc.ablation == "permute":
        texts, perm = permute([views[i].id for i in keep], texts, int(cfg.seed))
        permuted_from = {keep[n]: views[keep[p]].id for n, p in enumerate(perm)}
        permutation = [[views[keep[n]].id, views[keep[p]].id] for n, p in enumerate(perm)]
        atomic_write_json(out / "permutation.json", {"receiver_from": permutation})
    rows = []
    for n, i in enumerate(keep):
        v, raw = views[i], raws[i]
        meta = {"source": pc.name, "style": getattr(pc, "style", None),
                "ablation": pc.ablation, "order": "chosen_first" if v.chosen_first else "rejected_first",
                "labels": {"chosen": v.chosen_label, "rejected": v.rejected_label},
                "condition_prompt": condition_prompt(pc.condition_template, v)}
        if i in permuted_from:
            meta["permuted_from"] = permuted_from[i]
        rows.append({**raw, "id": v.id, "rationale": texts[n],
                     "meta": {**(raw.get("meta") or {}), "pair_rationale": meta}})
    atomic_write_jsonl(out / "d_h.jsonl", rows)
    order = Counter(r["meta"]["pair_rationale"]["order"] for r in rows)
    return {"counts": {"pairs": len(views), "with_rationale": len(rows), "failed": len(failures),
                       "order": dict(order)},
            "pairs_file": str(path), "source": pc.name, "ablation": pc.ablation,
            "failures": failures, **({"permutation": permutation} if permutation else {})}
