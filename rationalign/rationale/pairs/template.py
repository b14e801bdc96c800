"""`template` pair rationales, offline: from the ERRANT edits that separate y_w from y_l, e.g.
'Response A corrects "go" to "goes" because the verb must agree with its subject (subject-verb
agreement), which Response B leaves unchanged.'

With a source text (D_H layout, suggestions known) the edits of each suggestion against the source
are compared; otherwise (user layout) y_l is diffed against y_w directly. `opposite` swaps the roles:
the rejected response's edits are described as the preferred ones."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rationalign.edits import Edit
from rationalign.rationale.pairs.views import PairView
from rationalign.rationale.template import edit_reason, task_key

EditsFn = Callable[[Sequence[str], Sequence[str]], list[list[Edit]]]


def _q(text: str) -> str:
    return f'"{text}"'


def source_relative(ew: Sequence[Edit], el: Sequence[Edit], task: str, instruction: str, p: str, o: str) -> list[str]:
    """Sentences for the edits only the preferred suggestion makes, then those only the other makes."""
    def key(e: Edit):
        return (e.o_start, e.o_end, e.c_str)

    kw, kl = {key(e) for e in ew}, {key(e) for e in el}
    l_by_span = {(e.o_start, e.o_end): e for e in el if key(e) not in kw}
    verb = "corrects" if task_key(task, instruction) == "gec" else "changes"
    out, covered = [], set()
    for e in ew:
        if key(e) in kl:
            continue
        why = edit_reason(e, task, instruction)
        alt = l_by_span.get((e.o_start, e.o_end))
        if alt is not None:
            covered.add((alt.o_start, alt.o_end))
            alt_txt = f"has {_q(alt.c_str)}" if alt.c_str else "deletes it"
            if e.c_str:
                out.append(f"Response {p} {verb} {_q(e.o_str)} to {_q(e.c_str)} because {why}, where Response {o} {alt_txt}.")
            else:
                out.append(f"Response {p} deletes {_q(e.o_str)} because {why}, where Response {o} {alt_txt}.")
        elif not e.o_str:
            out.append(f"Response {p} inserts {_q(e.c_str)} because {why}, which Response {o} leaves out.")
        elif not e.c_str:
            out.append(f"Response {p} deletes {_q(e.o_str)} because {why}, which Response {o} keeps.")
        else:
            out.append(f"Response {p} {verb} {_q(e.o_str)} to {_q(e.c_str)} because {why}, "
                       f"which Response {o} leaves unchanged.")
    for f in el:
        if key(f) in kw or (f.o_start, f.o_end) in covered:
            continue
        if not f.o_str:
            out.append(f"Response {p} does not insert {_q(f.c_str)}, as Response {o} does.")
        elif not f.c_str:
            out.append(f"Response {p} keeps {_q(f.o_str)}, which Response {o} deletes.")
        else:
            out.append(f"Response {p} keeps {_q(f.o_str)}, which Response {o} changes to {_q(f.c_str)}.")
    return out


def direct(edits_lw: Sequence[Edit], task: str, instruction: str, p: str, o: str) -> list[str]:
    """Sentences for edits that turn the other response into the preferred one."""
    out = []
    for e in edits_lw:
        why = edit_reason(e, task, instruction)
        if not e.o_str:
            out.append(f"Response {p} adds {_q(e.c_str)}, which Response {o} lacks, because {why}.")
        elif not e.c_str:
            out.append(f"Response {p} omits {_q(e.o_str)}, which Response {o} includes, because {why}.")
        else:
            out.append(f"Response {p} has {_q(e.c_str)} where Response {o} has {_q(e.o_str)}, because {why}.")
    return out


def compose(sentences: list[str], p: str, o: str, max_edits: int) -> str:
    head = f"Response {p} is better than Response {o}."
    if not sentences:
        return f"{head} The two texts differ in no word-level edit; Response {p} is the preferred one as written."
    shown = sentences[:max_edits] if max_edits > 0 else sentences
    more = len(sentences) - len(shown)
    tail = f" They differ in {more} more place{'s' if more > 1 else ''} as well." if more else ""
    return " ".join([head, *shown]) + tail


def template_rationales(views: Sequence[PairView], *, opposite: bool = False, max_edits: int = 6,
                        edits_fn: EditsFn | None = None) -> list[str]:
    """One rationale per pair (never fails: errant parses any text)."""
    if edits_fn is None:
        from rationalign.edits import extract_edits as edits_fn
    rel = [i for i, v in enumerate(views) if v.source is not None and v.chosen_suggestion is not None
           and v.rejected_suggestion is not None]
    rel_set = set(rel)
    dirc = [i for i in range(len(views)) if i not in rel_set]

    def roles(v: PairView, suggestions: bool):
        w, lo = (v.chosen_suggestion, v.rejected_suggestion) if suggestions else (v.chosen, v.rejected)
        p, o = v.chosen_label, v.rejected_label
        return (lo, w, o, p) if opposite else (w, lo, p, o)

    out: list[str] = [""] * len(views)
    if rel:
        srcs = [views[i].source for i in rel]
        ws, ls = zip(*[roles(views[i], True)[:2] for i in rel])
        got = edits_fn(srcs + srcs, list(ws) + list(ls))
        for n, i in enumerate(rel):
            v = views[i]
            _, _, p, o = roles(v, True)
            sents = source_relative(got[n], got[len(rel) + n], v.task or "", v.instruction, p, o)
            out[i] = compose(sents, p, o, max_edits)
    if dirc:
        pairs = [roles(views[i], False) for i in dirc]
        got = edits_fn([lo for _, lo, _, _ in pairs], [w for w, _, _, _ in pairs])
        for n, i in enumerate(dirc):
            v = views[i]
            _, _, p, o = pairs[n]
            out[i] = compose(direct(got[n], v.task or "", v.instruction, p, o), p, o, max_edits)
    return out
