"""Typed options of evaluation: stage=evaluate, its significance tests and the headroom diagnostic
(part of the root schema in rationalign/config.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rationalign.checked import checked


@dataclass
class SignificanceParams:
    # The paper's one-tailed sign test with bootstrap resampling (rationalign/significance.py): B
    # resamples, corpus metric recomputed on each; 100 as NUS GEC papers state for this test.
    sign_test_resamples: int = checked(100, ge=1)
    # Koehn's (2004) paired bootstrap p, reported beside it.
    bootstrap_resamples: int = checked(1000, ge=1)


@dataclass
class EvaluateParams:
    # base (zero-shot), sft_no_rationale, aligned_no_rationale, sft, aligned, quark, or path:<dir>
    # (rationalign.stages.evaluate.SYSTEMS)
    systems: list[str] = field(default_factory=lambda: ["base", "sft", "aligned"])
    max_new_tokens: int = 96
    # Stop generating at the rationale marker: only the suggestion is scored, so this saves most
    # of the decoding time (the rationale is then not stored).
    stop_at_rationale: bool = False
    # free: the paper's end-to-end generation | grounded: one sentence per edit the suggestion makes, its
    # template prefix forced and the reason model-written (rationale/grounded.py). The suggestions are the
    # same; grounded decodes them up to the rationale marker whatever stop_at_rationale says.
    rationale_decoding: str = checked("free", choices=("free", "grounded"))
    reason_max_new_tokens: int = checked(40, ge=1)  # grounded: tokens the model may write per reason
    analyses: bool = True  # reward-model quality and edit precision (need the reward stage / errant)
    report_name: str = "report"
    significance: SignificanceParams = field(default_factory=SignificanceParams)
    # Add the reranking headroom of each evaluated SFT system (stage=headroom) and the D_H
    # statistics of each aligned system to the report: the diagnostics to read before believing
    # an alignment result.
    diagnostics: bool = False
    # Which split is evaluated: auto = test in a single run, dev under multirun (a sweep chooses
    # settings and must not see the test set). Resolved once per run (rationalign/data/eval_split.py).
    split: str = checked("auto", choices=("auto", "dev", "test"))


@dataclass
class HeadroomParams:
    split: str = checked("dev", choices=("dev", "test", "labeled"))  # inputs with gold; never test when tuning
    max_inputs: int | None = checked(200, ge=1)  # a seeded subset (sampling M per input costs)
