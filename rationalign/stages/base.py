"""Stage registry, content-addressed artifact dirs and manifests.

Every stage writes into  <workdir>/<stage>/<key>/  where `key` hashes the config sections the
stage depends on plus the keys of its upstream stages. So:
  * a rerun with the same config finds the manifest and skips the stage (resume after a crash);
  * a sweep whose jobs differ only in align.* shares the sft/sample/pairs dirs and gets its own
    align dir, and stale artifacts are never mixed with new ones;
  * running a stage whose upstream is missing builds the upstream first.
The manifest is written last and atomically: a dir without one is an unfinished stage.
"""

from __future__ import annotations

import logging
import platform
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rationalign.io import atomic_write_json, sha256_file, sha256_json
from rationalign.registry import Registry

log = logging.getLogger("rationalign")

MANIFEST = "manifest.json"


@dataclass
class Stage:
    name: str
    run: Callable[[Context, Path], dict]  # returns the manifest's "counts"/"metrics" payload
    # Dotted config paths whose values change this stage's output.
    config_keys: tuple[str, ...] = ()
    # Upstream stages, or a function of the config returning them (e.g. align with a pairs file
    # needs no pairs stage).
    upstream: tuple[str, ...] | Callable[[DictConfig], tuple[str, ...]] = ()
    # Input files named by config (data files) whose content is hashed into the key.
    input_files: Callable[[DictConfig], list[str]] | None = None
    description: str = ""
    # Keys of stages this one reads under another configuration (evaluate's systems trained without
    # rationale live under rationale.position=none): a function of the context -> {label: key}.
    related_keys: Callable[[Context], dict[str, str]] | None = None
    # Trains (the Trainer's all-reduce needs every rank under accelerate launch); other stages run on
    # rank 0 alone there (rationalign.distributed).
    collective: bool = False
    # False: a read-only stage (show_prompts) that gets out=None and writes no dir and no manifest.
    artifacts: bool = True

    def upstream_of(self, cfg: DictConfig) -> tuple[str, ...]:
        return self.upstream(cfg) if callable(self.upstream) else tuple(self.upstream)


STAGES: Registry[Stage] = Registry("stage")


def register_stage(name: str, **kw: Any) -> Callable[[Callable], Callable]:
    def deco(fn: Callable) -> Callable:
        STAGES.register(name)(Stage(name=name, run=fn, description=(fn.__doc__ or "").strip(), **kw))
        return fn

    return deco


def _select(cfg: DictConfig, dotted: str) -> Any:
    node = OmegaConf.select(cfg, dotted, throw_on_missing=False)
    if isinstance(node, DictConfig) or OmegaConf.is_list(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


_file_hash_cache: dict[tuple[str, float, int], str] = {}


def _file_hash(path: str) -> str:
    p = Path(path)
    st = p.stat()
    k = (str(p.resolve()), st.st_mtime, st.st_size)
    if k not in _file_hash_cache:
        _file_hash_cache[k] = sha256_file(p)
    return _file_hash_cache[k]


@dataclass
class Context:
    cfg: DictConfig
    workdir: Path
    _keys: dict[str, str] = field(default_factory=dict)
    # Stages this process already ran: an incomplete one is reused within the run, redone on the next.
    _ran: set[str] = field(default_factory=set)

    def key(self, name: str) -> str:
        """Content address of a stage's output under the current config."""
        if name not in self._keys:
            stage = STAGES.get(name)
            payload = {
                "stage": name,
                "config": {k: _select(self.cfg, k) for k in stage.config_keys},
                "upstream": {u: self.key(u) for u in stage.upstream_of(self.cfg)},
                "inputs": {f: _file_hash(f) for f in (stage.input_files(self.cfg) if stage.input_files else [])},
            }
            if stage.related_keys is not None:
                payload["related"] = stage.related_keys(self)
            self._keys[name] = sha256_json(payload)[:12]
        return self._keys[name]

    def stage_dir(self, name: str) -> Path:
        return self.workdir / name / self.key(name)

    def is_done(self, name: str) -> bool:
        m = self.stage_dir(name) / MANIFEST
        if not m.exists():
            return False
        import json

        manifest = json.loads(m.read_text())
        # An incomplete stage (records failed or were skipped, here or upstream) is never reused:
        # a rerun retries them, cheaply, from the answers cached so far.
        return manifest.get("key") == self.key(name) and not manifest.get("incomplete")

    def require(self, name: str) -> Path:
        """Output dir of a finished upstream stage, building it (and its upstream) when missing."""
        run_stage(self, name)
        return self.stage_dir(name)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("torch", "transformers", "peft", "accelerate", "errant", "sacrebleu"):
        m = sys.modules.get(mod)
        if m is not None:
            out[mod] = getattr(m, "__version__", "?")
    import rationalign

    out["rationalign"] = rationalign.__version__
    return out


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_stage(ctx: Context, name: str) -> dict:
    """Run one stage unless its manifest already matches; returns the manifest.

    Under accelerate launch every rank calls this with the same config; see rationalign.distributed
    for which ranks run the stage and which one writes."""

    from rationalign import distributed as dist

    stage = STAGES.get(name)
    if not stage.artifacts:
        return stage.run(ctx, None) or {}
    out = ctx.stage_dir(name)
    if dist.world_size() == 1:
        # A second identical run (another shell, a sweep job) waits here, then finds the manifest.
        with stage_lock(out):
            return _run_locked(ctx, stage, out)
    return _run_locked(ctx, stage, out)


@contextmanager
def stage_lock(out: Path):
    """An exclusive fcntl lock on <stage>/.<key>.lock beside the stage dir (released on exit or death)."""
    import fcntl

    lock_path = out.parent / f".{out.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("stage %s: another run holds %s; waiting for it", out.parent.name, lock_path)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_locked(ctx: Context, stage: Stage, out: Path) -> dict:
    import json

    from rationalign import distributed as dist

    name = stage.name
    dist.barrier()  # every rank looks at the same manifests
    if name in ctx._ran and (out / MANIFEST).exists():
        return json.loads((out / MANIFEST).read_text())
    if ctx.is_done(name):
        log.info("stage %s: up to date (%s), skipped", name, out)
        return json.loads((out / MANIFEST).read_text())
    if dist.in_solo() and stage.collective:
        raise RuntimeError(f"stage {name} trains, so under accelerate launch it needs every rank, but it is "
                           "only needed from inside a stage that rank 0 runs alone: build it first "
                           f"(rationalign stage={name} ... under the same launch)")
    for up in stage.upstream_of(ctx.cfg):
        run_stage(ctx, up)
    if dist.world_size() > 1 and not stage.collective and not dist.in_solo():
        if dist.is_main():
            with dist.solo():
                _execute(ctx, stage, out, world_size=dist.world_size())
        dist.barrier()
        return json.loads((out / MANIFEST).read_text())
    work = out
    if not dist.is_main():
        work = dist.scratch_copy(out)
    dist.barrier()  # the copies are taken before rank 0 writes on
    try:
        manifest = _execute(ctx, stage, work, world_size=dist.world_size(), write=dist.is_main())
    finally:
        if work is not out:
            dist.drop_scratch(work)
    dist.barrier()
    return manifest


def _incomplete_upstream(ctx: Context, stage: Stage) -> str | None:
    """A stage built from an incomplete upstream is itself incomplete (else its cache hides the gap)."""
    import json

    for up in stage.upstream_of(ctx.cfg):
        m = ctx.stage_dir(up) / MANIFEST
        if m.exists():
            why = json.loads(m.read_text()).get("incomplete")
            if why:
                return f"upstream {up}: {why}"
    return None


def _execute(ctx: Context, stage: Stage, out: Path, *, world_size: int = 1, write: bool = True) -> dict:
    name = stage.name
    out.mkdir(parents=True, exist_ok=True)
    log.info("stage %s: running -> %s", name, out)
    t0 = time.time()
    seed_everything(int(ctx.cfg.seed))  # every stage starts from the same RNG state, resumed or not
    from rationalign.data.splits import drop_tally

    with drop_tally() as dropped:  # records the stage's reads dropped, with their reasons
        payload = stage.run(ctx, out) or {}
    incomplete = payload.pop("incomplete", None) or _incomplete_upstream(ctx, stage)
    manifest = {
        "stage": name,
        "key": ctx.key(name),
        "config": {k: _select(ctx.cfg, k) for k in stage.config_keys},
        "upstream": {u: ctx.key(u) for u in stage.upstream_of(ctx.cfg)},
        "seed": ctx.cfg.seed,
        "world_size": world_size,  # processes that ran it (accelerate launch); only rank 0 writes
        "versions": _versions(),
        "seconds": round(time.time() - t0, 2),
        "outputs": {
            str(p.relative_to(out)): sha256_file(p)
            for p in sorted(out.rglob("*"))
            if p.is_file() and p.suffix in {".jsonl", ".json", ".md", ".csv"} and p.name != MANIFEST
            and "checkpoint" not in str(p.relative_to(out))
        },
        **payload,
    }
    if dropped:
        manifest["dropped"] = dropped
    if incomplete:
        manifest["incomplete"] = incomplete
        log.warning("stage %s: incomplete (%s); not cached as done, a rerun retries it", name, incomplete)
    if write:
        atomic_write_json(out / MANIFEST, manifest)
    ctx._ran.add(name)
    log.info("stage %s: done in %.1fs", name, manifest["seconds"])
    return manifest
