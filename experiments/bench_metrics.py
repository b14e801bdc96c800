"""Wall time of the metrics on real data: M2 on CoNLL-2014, SARI on ASSET valid, ERRANT/BLEU on JFLEG dev.

Data: $RATIONALIGN_DATA or ../shared/data next to the repository. Run:
    python experiments/bench_metrics.py
The "system outputs" are stand-ins built from the data itself (source copies, one annotator's or
reference's corrections): enough to time the scorers on realistic inputs, not a system result.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rationalign.m2_format import corrected_text, read_m2
from rationalign.metrics import bleu, errant_f, m2, sari


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _timed(label: str, fn):
    t = time.perf_counter()
    out = fn()
    print(f"{label:<58} {time.perf_counter() - t:7.2f} s   {out}")
    return out


def _fmt(d: dict, keys) -> str:
    return " ".join(f"{k}={d[k]:.4f}" if isinstance(d[k], float) else f"{k}={d[k]}" for k in keys)


def bench_m2(root: Path) -> None:
    f = root / "gec" / "conll14" / "official-2014.combined.m2"
    if not f.exists():
        print(f"M2: missing {f}")
        return
    sents = _timed("M2 parse CoNLL-2014 (1,312 sentences)", lambda: len(read_m2(f)))
    sents = read_m2(f)
    keys = ("correct", "proposed", "gold", "precision", "recall", "f")
    systems = {
        "source copied": [s.source for s in sents],
        "annotator 0 corrections": [corrected_text(s, 0) for s in sents],
        "annotator 1 on odd sentences": [corrected_text(s, 1) if i % 2 else s.source
                                         for i, s in enumerate(sents)],
    }
    for name, preds in systems.items():
        _timed(f"M2 CoNLL-2014, {name}", lambda p=preds: _fmt(m2.score(sents, p), keys))


def bench_sari(root: Path) -> None:
    d = root / "simplification" / "asset"
    if not (d / "asset.valid.orig").exists():
        print(f"SARI: missing {d}/asset.valid.*")
        return
    src = _lines(d / "asset.valid.orig")
    refs = list(map(list, zip(*[_lines(d / f"asset.valid.simp.{k}") for k in range(10)])))
    print(f"ASSET valid: {len(src)} sentences x {len(refs[0])} references")
    _timed("SARI ASSET valid, source copied", lambda: f"{sari.corpus_sari(src, src, refs):.4f}")
    _timed("SARI ASSET valid, reference 0 as output (cached tokens)",
           lambda: f"{sari.corpus_sari(src, [r[0] for r in refs], refs):.4f}")


def bench_jfleg(root: Path) -> None:
    d = root / "gec" / "jfleg"
    if not (d / "dev.src").exists():
        print(f"ERRANT/BLEU: missing {d}/dev.*")
        return
    src = _lines(d / "dev.src")
    refs = [_lines(d / f"dev.ref{k}") for k in range(4)]
    hyp = refs[0]                                  # reference 0 as the "system"
    others = list(map(list, zip(*refs[1:])))       # scored against references 1-3
    print(f"JFLEG dev: {len(src)} sentences; system = ref0, references = ref1-3")
    _timed("BLEU JFLEG dev", lambda: f"{bleu.corpus_bleu(hyp, others)['score']:.2f}")
    _timed("ERRANT load spaCy + errant", lambda: type(errant_f.get_annotator()).__name__)
    keys = ("tp", "fp", "fn", "precision", "recall", "f")
    _timed("ERRANT JFLEG dev (annotate 754 x 4 + compare)",
           lambda: _fmt(errant_f.score(src, hyp, others), keys))


def main() -> None:
    root = Path(os.environ.get("RATIONALIGN_DATA") or REPO.parent / "shared" / "data")
    if not root.exists():
        print(f"no data folder at {root}: set RATIONALIGN_DATA (needs gec/conll14, "
              f"simplification/asset, gec/jfleg)")
        return
    print(f"data: {root}")
    bench_m2(root)
    bench_sari(root)
    bench_jfleg(root)


if __name__ == "__main__":
    main()
