"""Stage registry, content-addressed artifact dirs and manifests.

Every stage writes into  <workdir>/<stage>/<key>/  where `key` hashes the config sections the
stage depends on plus the keys of its upstream stages. So:
  * a rerun with the same config finds the manifest and skips the stage (resume after a crash);
  * a sweep whose jobs differ only in align.* shares the sft/sample/pairs dirs and gets its own
    align dir, and stale artifacts are never mixed with new ones;
  * running a stage whose upstream is missing builds the upstream first.
The manifest is written last and atomically: a dir without one is an unfinished stage. Reuse
checks the files it lists and the upstream outputs it was built from (stages/artifacts.py), so a
truncated artifact or a rebuilt upstream makes the stage run again, with the reason logged.
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
from rationalign.stages.artifacts import (
    MANIFEST,
    STARTED,
    describe_outputs,
    outputs_digest,
    outputs_problem,
    read_manifest,
)

log = logging.getLogger("rationalign")


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
    # Generates text with the configured engine (or a function of the config saying whether it does):
    # validate.py checks before the first stage that engine=vllm can be imported for it.
    generates: bool | Callable[[DictConfig], bool] = False

    def upstream_of(self, cfg: DictConfig) -> tuple[str, ...]:
        return self.upstream(cfg) if callable(self.upstream) else tuple(self.upstream)

    def generates_with(self, cfg: DictConfig) -> bool:
        return bool(self.generates(cfg) if callable(self.generates) else self.generates)


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
        return self.stale_reason(name) is None

    def stale_reason(self, name: str) -> str | None:
        """None when the stage's dir can be reused as it is; else why not (file and reason)."""
        return _stale(self, name)[1]

    def upstream_digests(self, name: str) -> dict[str, str | None]:
        """{upstream: digest of its outputs} as on disk now (None: no readable manifest)."""
        out = {}
        for up in STAGES.get(name).upstream_of(self.cfg):
            m, _ = read_manifest(self.stage_dir(up) / MANIFEST)
            out[up] = outputs_digest(m) if m is not None else None
        return out

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


def _stale(ctx: Context, name: str) -> tuple[str, str | None]:
    """('ok', None) when the stage's dir can be reused; else (kind, why): 'missing' (never finished:
    resume), 'incomplete' (records failed: rerun in place, answered ones are cached) or 'stale' (its
    files or inputs cannot be trusted: clear the dir and build it again)."""
    out = ctx.stage_dir(name)
    manifest, bad = read_manifest(out / MANIFEST)
    if bad:
        return "stale", bad
    if manifest is None:
        return "missing", f"no {MANIFEST} in {out}"
    if manifest.get("key") != ctx.key(name):
        return "stale", f"{out / MANIFEST}: key {manifest.get('key')!r}, expected {ctx.key(name)!r}"
    if manifest.get("incomplete"):
        # An incomplete stage (records failed or were skipped, here or upstream) is never reused:
        # a rerun retries them, cheaply, from the answers cached so far.
        return "incomplete", f"incomplete ({manifest['incomplete']})"
    problem = outputs_problem(out, manifest)
    if problem:
        return "stale", problem
    built_from = manifest.get("upstream_outputs") or {}
    for up, digest in ctx.upstream_digests(name).items():
        if digest is not None and up in built_from and built_from[up] != digest:
            return "stale", f"upstream {up} was rebuilt with different outputs ({ctx.stage_dir(up)})"
    return "ok", None


def _prepare_dir(ctx: Context, stage: Stage, out: Path, clear: bool) -> None:
    """Clear a dir whose files cannot be trusted, or that was started from other upstream outputs;
    then record the upstream outputs this run builds from."""
    import shutil

    digests = ctx.upstream_digests(stage.name)
    started, _ = read_manifest(out / STARTED)
    if not clear and started is not None and started.get("upstream_outputs") != digests:
        log.warning("stage %s: %s was started from other upstream outputs; clearing it", stage.name, out)
        clear = True
    if clear and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / STARTED, {"upstream_outputs": digests})


def _run_locked(ctx: Context, stage: Stage, out: Path) -> dict:
    from rationalign import distributed as dist

    name = stage.name
    dist.barrier()  # every rank looks at the same manifests
    if name in ctx._ran:
        manifest, _ = read_manifest(out / MANIFEST)
        if manifest is not None:
            return manifest
    kind, why = _stale(ctx, name)
    if kind == "ok":
        log.info("stage %s: up to date (%s), skipped", name, out)
        return read_manifest(out / MANIFEST)[0]
    if kind == "stale":
        log.warning("stage %s: not reused, rebuilding: %s", name, why)
    elif kind == "incomplete":
        log.info("stage %s: %s; running it again", name, why)
    if dist.in_solo() and stage.collective:
        raise RuntimeError(f"stage {name} trains, so under accelerate launch it needs every rank, but it is "
                           "only needed from inside a stage that rank 0 runs alone: build it first "
                           f"(rationalign stage={name} ... under the same launch)")
    for up in stage.upstream_of(ctx.cfg):
        run_stage(ctx, up)
    dist.barrier()  # every rank has judged the dir before rank 0 clears it
    if dist.is_main():
        _prepare_dir(ctx, stage, out, clear=kind == "stale")
    if dist.world_size() > 1 and not stage.collective and not dist.in_solo():
        if dist.is_main():
            with dist.solo():
                _execute(ctx, stage, out, world_size=dist.world_size())
        dist.barrier()
        return read_manifest(out / MANIFEST)[0]
    dist.barrier()  # the dir is ready before other ranks copy it
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
    for up in stage.upstream_of(ctx.cfg):
        manifest, _ = read_manifest(ctx.stage_dir(up) / MANIFEST)
        why = (manifest or {}).get("incomplete")
        if why:
            return f"upstream {up}: {why}"
    return None


def _execute(ctx: Context, stage: Stage, out: Path, *, world_size: int = 1, write: bool = True) -> dict:
    name = stage.name
    out.mkdir(parents=True, exist_ok=True)
    log.info("stage %s: running -> %s", name, out)
    t0 = time.time()
    seed_everything(int(ctx.cfg.seed))  # every stage starts from the same RNG state, resumed or not
    from rationalign.data.splits import carve_tally, drop_tally

    # records the stage's reads dropped, with their reasons; what each carved pool part held
    with drop_tally() as dropped, carve_tally() as carved:
        payload = stage.run(ctx, out) or {}
    incomplete = payload.pop("incomplete", None) or _incomplete_upstream(ctx, stage)
    outputs, output_stats = describe_outputs(out)
    manifest = {
        "stage": name,
        "key": ctx.key(name),
        "config": {k: _select(ctx.cfg, k) for k in stage.config_keys},
        "upstream": {u: ctx.key(u) for u in stage.upstream_of(ctx.cfg)},
        # What each upstream's files were when this ran: a rebuilt upstream makes this stage stale.
        "upstream_outputs": ctx.upstream_digests(name),
        "seed": ctx.cfg.seed,
        "world_size": world_size,  # processes that ran it (accelerate launch); only rank 0 writes
        "versions": _versions(),
        "seconds": round(time.time() - t0, 2),
        "outputs": outputs,  # every file but checkpoints: sha256, and size + mtime for a cheap check on reuse
        "output_stats": output_stats,
        **payload,
    }
    if dropped:
        manifest["dropped"] = dropped
    if carved:
        manifest["carved"] = carved
    if incomplete:
        manifest["incomplete"] = incomplete
        log.warning("stage %s: incomplete (%s); not cached as done, a rerun retries it", name, incomplete)
    if write:
        atomic_write_json(out / MANIFEST, manifest)
    ctx._ran.add(name)
    log.info("stage %s: done in %.1fs", name, manifest["seconds"])
    return manifest
