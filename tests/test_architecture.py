"""The shape docs/architecture.md describes, checked on the source (no imports executed): imports
form no cycle and only go down the layers, nothing imports the command line but __main__, no
module imports another module's private names, no module is over 450 lines, nothing stray at the
repository root. Lazy imports inside functions count: they are cycles all the same."""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "rationalign"
MAX_LINES = 450

# Lowest first. A module may import its own layer and the layers below, never one above.
LAYERS = [
    ("base", ["rationalign.io", "rationalign.cfg_access", "rationalign.registry", "rationalign.secrets",
              "rationalign.typed_options", "rationalign.m2_format", "rationalign.nlp_models", "rationalign.data",
              "rationalign.metrics", "rationalign.tokenization", "rationalign.edits", "rationalign.prompts",
              "rationalign.prompt_config", "rationalign.responses", "rationalign.llm", "rationalign.significance"]),
    ("training and engines", ["rationalign.training", "rationalign.engines", "rationalign.losses",
                              "rationalign.quark", "rationalign.models", "rationalign.rationale", "rationalign.judge",
                              "rationalign.tracking", "rationalign.distributed", "rationalign.run_identity",
                              "rationalign.wandb_offline"]),
    ("stages", ["rationalign.stages"]),
    ("entry points", ["rationalign.cli", "rationalign.__main__", "rationalign.sweep", "rationalign.runner",
                      "rationalign.sweep_upstream", "rationalign.job_metrics"]),
]


def modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def imports(mods: dict[str, Path]) -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """module -> rationalign modules it imports; and (importer, module, private name) triples."""
    edges: dict[str, set[str]] = defaultdict(set)
    private = []
    for mod, path in mods.items():
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not target.startswith("rationalign"):
                    continue
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    edges[mod].add(full if full in mods else target)
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        private.append((mod, target, alias.name))
            elif isinstance(node, ast.Import):
                edges[mod].update(a.name for a in node.names if a.name.startswith("rationalign"))
    return edges, private


def cycles(mods: dict[str, Path], edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in mods:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for v in sorted(mods):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def layer_of(mod: str) -> int | None:
    best = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (mod == p or mod.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    return None if best is None else best[0]


@pytest.fixture(scope="module")
def graph():
    mods = modules()
    edges, private = imports(mods)
    return mods, edges, private


def test_no_import_cycle(graph):
    mods, edges, _ = graph
    assert cycles(mods, edges) == []


def test_imports_only_go_down(graph):
    _, edges, _ = graph
    upward = []
    for mod, targets in edges.items():
        lo = layer_of(mod)
        for t in targets:
            lt = layer_of(t)
            if lo is not None and lt is not None and lt > lo:
                upward.append(f"{mod} ({LAYERS[lo][0]}) imports {t} ({LAYERS[lt][0]})")
    assert sorted(upward) == []


def test_only_main_imports_the_command_line(graph):
    _, edges, _ = graph
    assert sorted(m for m, t in edges.items() if "rationalign.cli" in t and m != "rationalign.__main__") == []


def test_no_private_name_imported_from_another_module(graph):
    _, _, private = graph
    assert [f"{m} imports {n} from {t}" for m, t, n in private if t != m] == []


def test_no_module_over_450_lines(graph):
    mods, _, _ = graph
    long = {m: n for m, p in mods.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_nothing_stray_at_the_root():
    """What git tracks at the root (outputs, environments and caches are ignored, not shipped)."""
    import subprocess

    listed = subprocess.run(["git", "ls-files"], check=False, cwd=REPO, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    top = {f.split("/", 1)[0] for f in listed.stdout.splitlines()}
    expected = {"Makefile", "README.md", "pyproject.toml", "conf", "docs", "experiments", "rationalign", "tests",
                ".ci", ".gitignore"}
    assert top - expected == set()


def test_the_checker_finds_what_it_looks_for(tmp_path):
    """The checks above pass only if they can fail: a planted cycle, an upward import and a private
    import are all found."""
    (tmp_path / "rationalign" / "stages").mkdir(parents=True)
    (tmp_path / "rationalign" / "__init__.py").write_text("")
    (tmp_path / "rationalign" / "stages" / "__init__.py").write_text("")
    (tmp_path / "rationalign" / "io.py").write_text("from rationalign.stages.x import _helper\n")
    (tmp_path / "rationalign" / "stages" / "x.py").write_text("from rationalign import io\n_helper = 1\n")
    global PKG, REPO
    saved = PKG, REPO
    PKG, REPO = tmp_path / "rationalign", tmp_path
    try:
        mods = modules()
        edges, private = imports(mods)
    finally:
        PKG, REPO = saved
    assert cycles(mods, edges) == [["rationalign.io", "rationalign.stages.x"]]
    assert layer_of("rationalign.io") == 0 and layer_of("rationalign.stages.x") == 2
    assert private == [("rationalign.io", "rationalign.stages.x", "_helper")]
