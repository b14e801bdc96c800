"""Mutation testing of the core with mutmut (`make mutation`; not part of CI).

Scope, test selection and process isolation are in pyproject.toml under [tool.mutmut]. mutmut
writes the mutated copy and its results under mutants/ (git-ignored); this script runs it, lists
every mutant that was not killed, and prints, as its last line,

    mutation score: <killed>/<total> = <pct>%

killed counts the mutants the tests failed on (a timeout counts as killed, as mutmut's own score
does). total is every mutant in a function that a selected test executes: mutants mutmut marks "no
tests" (a default value on the `def` line of a function no selected test calls; the line ran at
import, so coverage kept it) are outside the coverage scope, counted and listed apart. Survivors,
"suspicious" and "not checked" mutants all count against the score. docs/testing.md explains each
survivor.

    .venv/bin/python experiments/mutation.py [--max-children N] [--fresh] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KILLED = {"killed", "timeout", "caught by type check"}


def mutmut() -> list[str]:
    exe = Path(sys.executable).parent / "mutmut"
    if not exe.exists():
        raise SystemExit(f"{exe} not found: install it with `{sys.executable} -m pip install mutmut==3.8.1` "
                         "(make mutation does)")
    return [str(exe)]


def statuses() -> dict[str, str]:
    """mutant name -> status, from the .meta files mutmut keeps beside each mutated file."""
    from mutmut.stats import status_by_exit_code

    out = {}
    for meta in sorted((REPO / "mutants").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        for name, code in data.get("exit_code_by_key", {}).items():
            out[name] = status_by_exit_code[code]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--fresh", action="store_true", help="delete mutants/ first (no cached results)")
    ap.add_argument("--report-only", action="store_true", help="summarise the last run without running")
    a = ap.parse_args()
    os.chdir(REPO)
    # The tests run inside mutants/, whose parent is this checkout: point them at the reference data
    # the checkout's own tests would find (../shared), unless the caller set it (conftest.shared_dir).
    for kind, env in (("vectors", "RATIONALIGN_VECTORS"), ("data", "RATIONALIGN_DATA")):
        if not os.environ.get(env) and (REPO.parent / "shared" / kind).exists():
            os.environ[env] = str(REPO.parent / "shared" / kind)
    print("reference vectors:", os.environ.get("RATIONALIGN_VECTORS", "none (the vector tests skip)"))
    t = time.time()
    if not a.report_only:
        if a.fresh:
            shutil.rmtree(REPO / "mutants", ignore_errors=True)
        res = subprocess.run([*mutmut(), "run", "--max-children", str(a.max_children)], check=False)
        if res.returncode != 0:
            print(f"mutmut run failed with exit code {res.returncode}", file=sys.stderr)
            return res.returncode
    st = statuses()
    if not st:
        raise SystemExit("no mutmut results under mutants/: run without --report-only")
    counts = Counter(st.values())
    by_file = Counter(name.split(".x_")[0].split(".xǁ")[0] for name in st)
    print("\nmutants per module:", ", ".join(f"{k} {v}" for k, v in sorted(by_file.items())))
    print("by status:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    left = sorted(n for n, s in st.items() if s not in KILLED and s != "not checked")
    if left:
        print(f"\nnot killed ({len(left)}; `mutmut show <name>` prints the change):")
        for n in left:
            print(f"    {n}: {st[n]}")
    if not a.report_only:
        print(f"\nwall time: {time.time() - t:.0f} s with --max-children {a.max_children}")
    in_scope = {n: s for n, s in st.items() if s != "no tests"}
    killed = sum(1 for s in in_scope.values() if s in KILLED)
    print(f"outside the coverage scope (no selected test calls the function): {len(st) - len(in_scope)}")
    print(f"mutation score: {killed}/{len(in_scope)} = {100 * killed / max(len(in_scope), 1):.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
