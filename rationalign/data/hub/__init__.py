"""data=hub: the paper's training, unlabeled and test sets from the public Hugging Face hub.

conf/data/hub.yaml names every dataset with a pinned revision; `build` converts and samples them
once per configuration into a content-addressed cache (rationalign/data/hub/build.py), and the
splits are read from there. Sets that are not public on the hub (GYAFC, and CoNLL-2014 / WNC where
no hub copy is named) come from local files. rationalign.data.configured routes
data.format=hub here.
"""

from __future__ import annotations

from omegaconf import DictConfig

from rationalign.data.hub.build import FILES, MANIFEST, cache_dir, ensure_built, read_split
from rationalign.data.hub.spec import HubConfig, SourceSpec, parse_hub

__all__ = ["FILES", "MANIFEST", "HubConfig", "SourceSpec", "cache_dir", "ensure_built", "hub_files",
           "hub_specs", "parse_hub", "read_split"]

# dev: its own specs, and for a task without one a hold-out of the train pool
_NODES = {"labeled": ("train",), "unlabeled": ("train", "unlabeled_extra"), "dev": ("dev", "train"), "test": ("test",)}


def hub_specs(cfg: DictConfig, split: str, tasks: list[str] | None = None) -> list[tuple[str, str, dict]]:
    """(config key, task, spec) of the specs that feed `split`, validated, nothing downloaded."""
    hub = parse_hub(cfg)
    wanted = list(cfg.task.names if tasks is None else tasks)
    return [(s.key, s.task, {"dataset": s.dataset, "split": s.split, "convert": s.convert, "format": s.format,
                             **s.paths, **s.options})
            for node in _NODES[split] for s in hub.of(node, wanted)]


def hub_files(cfg: DictConfig, splits: tuple[str, ...] = tuple(FILES)) -> list[str]:
    """The converted record files of `splits` (built when needed): what stage keys hash for data=hub."""
    d = ensure_built(cfg)
    return [str(d / FILES[s]) for s in splits]
