"""The wheel is self-contained: conf/, the demo data and every module install with the package, and an
installed (non-editable) copy runs a stage from any directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the sources, so no build/ or egg-info lands in the checkout; no build
    # isolation, so the venv's setuptools builds it offline.
    src = out / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("conf", "rationalign"):
        shutil.copytree(REPO / name, src / name, ignore=skip)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(src)], check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = out.glob("rationalign-*.whl")
    return whl


def test_wheel_holds_conf_demo_data_and_every_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in sorted((REPO / "conf").rglob("*.yaml")):
        assert f"rationalign/conf/{f.relative_to(REPO / 'conf').as_posix()}" in names, f
    for f in sorted((REPO / "rationalign").rglob("*")):
        if f.is_file() and f.suffix in (".py", ".jsonl", ".tsv", ".html", ".txt") and "__pycache__" not in f.parts:
            assert f.relative_to(REPO).as_posix() in names, f"{f} missing from the wheel (pyproject packages list?)"
    assert not any(n.startswith("conf/") for n in names)  # mapped into the package, not a top-level dir


def test_installed_wheel_runs_sft_from_another_directory(wheel, tmp_path):
    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
                           "--target", str(target), str(wheel)], check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(target), "TOKENIZERS_PARALLELISM": "false"}
    where = subprocess.run([sys.executable, "-c", "import rationalign.cli as c; print(c.__file__); print(c.CONF_DIR)"],
                           cwd=elsewhere, env=env, check=False, capture_output=True, text=True, timeout=120)
    module_file, conf = where.stdout.split()
    assert module_file.startswith(str(target)) and conf == str(target / "rationalign" / "conf"), where.stdout
    run = subprocess.run([sys.executable, "-m", "rationalign", "stage=sft", "model=tiny", "paths.root=out",
                          "data.max_labeled_per_task=4", "sft.train.epochs=1"],
                         cwd=elsewhere, env=env, check=False, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    (manifest,) = (elsewhere / "out").glob("default/sft/*/manifest.json")
    m = json.loads(manifest.read_text())
    assert m["counts"]["records"] > 0 and (manifest.parent / "adapter" / "adapter_config.json").exists()
    # The demo data came from the installed package, not from the checkout.
    (rat,) = (elsewhere / "out").glob("default/rationalize/*/manifest.json")
    assert str(target) in json.dumps(json.loads(rat.read_text())["config"]["data"])
