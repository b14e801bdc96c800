"""A stand-in test set for `experiment=asset` made of ASSET *validation* sentences that the preset's
carve leaves unused, in ASSET's line-aligned format (<out>/standin.orig, <out>/standin.simp.0-9).

It has the size of ASSET test (359 sentences by default), so a run measures the preset's real cost and
gets a second held-out estimate beside dev, without ever touching ASSET test (docs/results.md):

    RATIONALIGN_DATA=../shared/data .venv/bin/python experiments/make_standin_test.py /tmp/standin
    RATIONALIGN_DATA=../shared/data .venv/bin/rationalign experiment=asset \\
        data.local.test.simplification.source=/tmp/standin/standin.orig \\
        "data.local.test.simplification.refs=/tmp/standin/standin.simp.*"
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=359, help="sentences (ASSET test has 359)")
    ap.add_argument("overrides", nargs="*", help="overrides of experiment=asset (e.g. a different carve)")
    args = ap.parse_args(argv)

    from rationalign.data.carve import norm_source
    from rationalign.data.splits import load_split
    from rationalign.runner import compose

    cfg = compose(["experiment=asset", *args.overrides])
    used = {norm_source(r.source) for s in ("labeled", "unlabeled", "dev") for r in load_split(cfg, s)}
    pool = cfg.data.local.pools.asset_valid
    root = Path(cfg.data.local.root)
    orig = (root / pool.source).read_text(encoding="utf-8").splitlines()
    refs = [p.read_text(encoding="utf-8").splitlines() for p in sorted(root.glob(pool.refs))]
    seen: set[str] = set()
    pick: list[int] = []
    for i in random.Random("standin").sample(range(len(orig)), len(orig)):
        key = norm_source(orig[i])
        if key not in used and key not in seen:  # unused by the carve, one line per source sentence
            seen.add(key)
            pick.append(i)
        if len(pick) == args.n:
            break
    if len(pick) < args.n:
        print(f"only {len(pick)} unused source sentences in {root / pool.source}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "standin.orig").write_text("".join(orig[i] + "\n" for i in pick), encoding="utf-8")
    for k, r in enumerate(refs):
        (args.out / f"standin.simp.{k}").write_text("".join(r[i] + "\n" for i in pick), encoding="utf-8")
    print(f"{len(used)} sources used by the carve; {len(pick)} written to {args.out} with {len(refs)} references each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
