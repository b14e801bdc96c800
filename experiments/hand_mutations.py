"""Apply each hand-written mutation of the core (issue 13's list and a few more) to a temporary copy
of the checkout, one at a time, run the fast tests that should catch it, and print killed/survived.

    .venv/bin/python experiments/hand_mutations.py [--only ID ...] [--tests-all]

A mutation "survives" when its tests still pass; the script exits 1 if any survives. `--tests-all`
runs the whole fast suite per mutation instead of the targeted files (slow: minutes per mutation).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    id: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    what: str


PREF = "rationalign/training/preference.py"
LOSS_TESTS = ("tests/test_loss_assembly.py",)
SCORED = "tests/test_scored_text.py"

MUTATIONS = [
    Mutation("pref-swap-rows", PREF, '"chosen_logps": lp[:b], "rejected_logps": lp[b:2 * b]',
             '"chosen_logps": lp[b:2 * b], "rejected_logps": lp[:b]', LOSS_TESTS,
             "make_loss_fn: chosen and rejected rows swapped"),
    Mutation("pref-swap-lengths", PREF, '"chosen_lengths": lens[:b], "rejected_lengths": lens[b:2 * b]',
             '"chosen_lengths": lens[b:2 * b], "rejected_lengths": lens[:b]', LOSS_TESTS,
             "make_loss_fn: chosen and rejected lengths swapped"),
    Mutation("pref-swap-rewards", PREF,
             'reward_chosen=inputs["rewards"][:, 0], reward_rejected=inputs["rewards"][:, 1]',
             'reward_chosen=inputs["rewards"][:, 1], reward_rejected=inputs["rewards"][:, 0]', LOSS_TESTS,
             "make_loss_fn: reward columns swapped"),
    Mutation("pref-swap-reference", PREF,
             'ref_chosen_logps=inputs["ref"][:, 0], ref_rejected_logps=inputs["ref"][:, 1]',
             'ref_chosen_logps=inputs["ref"][:, 1], ref_rejected_logps=inputs["ref"][:, 0]', LOSS_TESTS,
             "make_loss_fn: reference columns swapped"),
    Mutation("pref-rationale-rows", PREF, "rationale_logps=lp[2 * b:]", "rationale_logps=lp[:b]", LOSS_TESTS,
             "make_loss_fn: rationale log-probs taken from the chosen rows"),
    Mutation("pref-collate-order", PREF,
             'seqs = [{"prompt_ids": f["c_prompt"], "completion_ids": f["c_ids"]} for f in features]\n'
             '    seqs += [{"prompt_ids": f["r_prompt"], "completion_ids": f["r_ids"]} for f in features]',
             'seqs = [{"prompt_ids": f["r_prompt"], "completion_ids": f["r_ids"]} for f in features]\n'
             '    seqs += [{"prompt_ids": f["c_prompt"], "completion_ids": f["c_ids"]} for f in features]',
             LOSS_TESTS, "collate_preference: rejected rows stacked first"),
    Mutation("dh-chosen-worst", "rationalign/stages/pairs.py", 'w = max(ok, key=lambda c: c["reward"])',
             'w = min(ok, key=lambda c: c["reward"])', ("tests/test_select_pairs.py",),
             "select_pairs: chosen = worst candidate"),
    Mutation("dh-bottom-fraction", "rationalign/stages/pairs.py",
             'scored.sort(key=lambda r: (-r["chosen_reward"], r["id"]))',
             'scored.sort(key=lambda r: (r["chosen_reward"], r["id"]))', ("tests/test_select_pairs.py",),
             "select_pairs: bottom fraction kept"),
    Mutation("dh-ignore-min-gap", "rationalign/stages/pairs.py", 'lo["reward"] <= min_gap', 'lo["reward"] <= 0.0',
             ("tests/test_select_pairs.py",), "select_pairs: min_reward_gap ignored"),
    Mutation("dh-round-down", "rationalign/stages/pairs.py", "math.floor(keep_fraction * len(scored) + 0.5)",
             "math.floor(keep_fraction * len(scored))", ("tests/test_select_pairs.py",),
             "select_pairs: kept count rounded down"),
    Mutation("kfold-train-on-heldout", "rationalign/stages/kfold.py",
             "train = [r for r, g in zip(records, folds) if g != f]", "train = list(records)",
             ("tests/test_kfold_split.py",), "run_kfold: each fold model trains on its own held-out inputs"),
    Mutation("kfold-no-resume", "rationalign/stages/kfold.py", "if not done.exists():", "if True:",
             ("tests/test_kfold_split.py",), "run_kfold: finished folds retrained on resume"),
    Mutation("kfold-blocks", "rationalign/stages/kfold.py", "random.Random(seed).shuffle(order)", "pass",
             ("tests/test_kfold_split.py",), "assign_folds: no shuffle"),
    Mutation("kfold-rank-reversed", "rationalign/stages/kfold.py", "(a, b) if score[a] > score[b] else (b, a)",
             "(b, a) if score[a] > score[b] else (a, b)", ("tests/test_kfold_split.py",),
             "rank_pairs: the lower-scoring sample is chosen"),
    Mutation("report-cells-zero", "rationalign/stages/evaluate.py", 'cell["score"] = float(res["score"])',
             'cell["score"] = 0.0', ("tests/test_report_cells.py",), "score_column: every cell 0"),
    Mutation("report-all-42", "rationalign/report.py", '"ALL": avg,', '"ALL": 42.0,',
             ("tests/test_report_cells.py",), "build_table: ALL = 42"),
    Mutation("report-all-formality", "rationalign/report.py", 'vals = [cells[c]["score"] for c in COLUMNS if c in cells]',
             'vals = [cells[c].get("formality", cells[c]["score"]) for c in COLUMNS if c in cells]',
             ("tests/test_report_cells.py",), "all_average: formality accuracy instead of BLEU for GYAFC"),
    Mutation("score-formality-as-classifier", "rationalign/scoring.py", 'metric = "bleu"', "pass",
             ("tests/test_sentence_score.py",), "sentence_score: formality ranked by the classifier"),
    Mutation("score-ignore-gold-m2", "rationalign/scoring.py", 'if metric == "m2" and gold_m2:',
             "if False:", ("tests/test_sentence_score.py",), "sentence_score: the record's gold M2 ignored"),
    Mutation("score-first-reference-only", "rationalign/scoring.py", "refs: Any = [record.gold]",
             "refs: Any = [record.gold[:1]]", ("tests/test_sentence_score.py",),
             "sentence_score: only the first reference used"),
    Mutation("rm-one-shared-adapter", "rationalign/training/reward.py",
             "                self.model.set_adapter(adapter)\n", "                pass\n",
             ("tests/test_per_task_rm.py::test_scorer_uses_each_tasks_own_adapter",),
             "RewardScorer: every task scored through one shared adapter"),
    Mutation("quark-ignore-prefix", "rationalign/stages/evaluate.py",
             "engine.generate([prefix + user_message(sys_cfg, r) for r in recs]",
             "engine.generate([user_message(sys_cfg, r) for r in recs]", ("tests/test_quark_prefix.py",),
             "evaluate: QUARK policy sampled without its best-bin prefix"),
    Mutation("quark-contrast-ignores-bin", "rationalign/stages/quark_rounds.py",
             '(("best", n_bins - 1), ("worst", 0))', '(("best", n_bins - 1), ("worst", n_bins - 1))',
             ("tests/test_quark_prefix.py",), "contrast_check: the worst bin sampled with the best-bin tokens"),
    # Issue 27: mutants the whole fast suite let through (or caught only by accident).
    Mutation("report-sari-sentence-mean", "rationalign/stages/evaluate.py",
             "        res = get_metric(m)([r.source for r in recs], hyps, refs)\n",
             "        res = get_metric(m)([r.source for r in recs], hyps, refs)\n"
             "        if m == \"sari\":\n"
             "            res = {\"score\": sum(get_metric(m)([r.source], [h], [g])[\"score\"]\n"
             "                               for r, h, g in zip(recs, hyps, refs)) / len(recs)}\n",
             (f"{SCORED}::test_sari_cell_is_corpus_sari_not_the_sentence_mean",),
             "score_column: SARI cell = mean of sentence SARI instead of corpus SARI"),
    Mutation("eval-malformed-raw-text", "rationalign/stages/evaluate.py",
             "suggestion = p.suggestion if p.suggestion else r.source", "suggestion = p.suggestion if p.ok else o",
             (f"{SCORED}::test_malformed_answer_is_scored_on_its_suggestion",),
             "generate_predictions: a malformed output's raw text (marker, rationale) scored as the suggestion"),
    Mutation("sample-top-p-dropped", "rationalign/stages/sample.py", "top_p=float(s.top_p), ", "",
             (f"{SCORED}::test_sample_stage_passes_the_configured_sampling_to_the_engine",),
             "stage=sample: engine.sampling.top_p not passed (the engine samples with top_p 1.0)"),
    Mutation("pairs-score-text", "rationalign/stages/pairs.py",
             'items.append((row["task"], row["instruction"], row["source"], c["suggestion"]))',
             'items.append((row["task"], row["instruction"], row["source"], c["text"]))',
             (f"{SCORED}::test_pairs_stage_scores_the_suggestion_not_the_rationale",),
             "stage=pairs: the reward model scores suggestion + rationale instead of the suggestion"),
    Mutation("gguf-temp-as-hit", "rationalign/models.py", 'if (target / "config.json").exists():',
             'if (target / "config.json").exists() or any(target.parent.glob(".convert-*/config.json")):',
             ("tests/test_models.py::test_unfinished_conversion_is_not_mistaken_for_a_cache_hit",),
             "converted_gguf_dir: a leftover temp dir taken for a cache hit"),
    Mutation("gguf-partial-as-hit", "rationalign/models.py", 'if (target / "config.json").exists():',
             "if target.exists():",
             ("tests/test_models.py::test_unfinished_conversion_is_not_mistaken_for_a_cache_hit",),
             "converted_gguf_dir: a published dir without config.json taken for a cache hit"),
    # issue 31: sweeps that compare, SLURM
    Mutation("rank-bookkeeping", "rationalign/report_sweep.py", "            return direction\n    return None",
             '            return direction\n    return "max"', ("tests/test_sweep_metrics.py::test_default_direction",),
             "default_direction: every unknown name (n, malformed, seconds) ranked higher-is-better"),
    Mutation("rank-unanchored", "rationalign/report_sweep.py", "if pattern.fullmatch(name):", "if pattern.search(name):",
             ("tests/test_sweep_metrics.py::test_default_direction",), "ranking patterns match inside names"),
    Mutation("metric-unknown-accepted", "rationalign/report_sweep.py", "        if name not in numeric:",
             "        if False:", ("tests/test_sweep_metrics.py::test_an_unknown_metric_is_an_error_listing_the_known_ones",),
             "--metric: a name the sweep does not have is not reported as unknown"),
    Mutation("report-no-all", "rationalign/report_metrics.py", '        put(f"{system}.ALL"', '        (f"{system}.ALL"',
             ("tests/test_sweep_metrics.py::test_report_metrics_names_and_values",), "report_metrics: ALL left out"),
    Mutation("summary-not-logged", "rationalign/runner.py", "log_summary(tracker, final_metrics(cfg, manifest))",
             "log_summary(tracker, {})",
             ("tests/test_tracking_identity.py::test_each_sweep_job_has_its_report_in_a_distinct_offline_wandb_run",),
             "the final report never reaches the wandb run's summary"),
    Mutation("run-name-fixed", "rationalign/run_identity.py",
             '"name": run_name(cfg, overrides, swept_keys(sweep_dir))', '"name": f"{cfg.stage.name}-{cfg.loss.name}"',
             ("tests/test_tracking_identity.py::test_each_sweep_job_has_its_report_in_a_distinct_offline_wandb_run",),
             "every run of a sweep named <stage>-<loss>"),
    Mutation("ckpt-trust-partial", "rationalign/training/trainer.py", "    done = [p for p in ckpts if complete(p)]",
             "    done = ckpts", ("tests/test_preference_trainer.py::test_resume_skips_a_checkpoint_cut_short",),
             "last_checkpoint: resumes from a checkpoint a killed job left half-written"),
    Mutation("resume-global-rng-order", "rationalign/training/trainer.py",
             "        if type(sampler) is LengthGroupedSampler:  # see EpochSeededLengthSampler", "        if False:",
             ("tests/test_preference_trainer.py::test_resume_mid_epoch_with_length_grouping_reproduces_uninterrupted_run",),
             "group_by_length shuffles from the global RNG: a mid-epoch resume trains on other batches"),
    Mutation("cluster-foreign-pid", "experiments/slurm_cluster.py",
             "return pid if daemon in cmd and str(state) in cmd else None", "return pid if daemon in cmd else None",
             ("tests/test_slurm_cluster.py::test_only_daemons_started_for_this_state_dir_count_as_ours",),
             "slurm_cluster: a daemon of another cluster taken for ours (stop would kill it)"),
    Mutation("cluster-cgroup", "experiments/slurm_cluster.py", '"ProctrackType=proctrack/linuxproc"',
             '"ProctrackType=proctrack/cgroup"',
             ("tests/test_slurm_cluster.py::test_slurm_conf_one_node_no_cgroups_everything_in_the_state_dir",),
             "slurm.conf: a cgroup plugin a container cannot run"),
    Mutation("shared-by-key-only", "rationalign/sweep_upstream.py", "dirs = {c.stage_dir(name) for c in ctxs}",
             "dirs = {c.key(name) for c in ctxs}",
             ("tests/test_sweep_upstream.py::test_a_loss_grid_shares_everything_before_align",),
             "shared upstream: jobs writing to different dirs (run_name) taken as sharing a stage"),
    Mutation("sweep-config-error-exits", "rationalign/cli.py",
             "        if _multirun():  # one bad grid point: Hydra records this job as failed (result.json), the others run\n"
             "            raise\n", "",
             ("tests/test_sweeps.py::test_a_failing_job_is_recorded_and_the_sweep_goes_on",),
             "a config error in one grid point exits the whole sweep"),
]


def _copy_checkout(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    for f in files:
        src = REPO / f
        if src.is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)


def run_one(m: Mutation, tests_all: bool, python: str) -> tuple[bool, float, str]:
    with tempfile.TemporaryDirectory(prefix=f"hm-{m.id}-") as tmp:
        root = Path(tmp)
        _copy_checkout(root)
        path = root / m.file
        text = path.read_text()
        if text.count(m.old) != 1:
            raise SystemExit(f"{m.id}: {m.file} has {text.count(m.old)} copies of the text to mutate (want 1)")
        path.write_text(text.replace(m.old, m.new))
        # python -m pytest from the copy: its rationalign/ comes first on sys.path, ahead of the
        # editable install of the checkout.
        cmd = [python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *([] if tests_all else m.tests)]
        t = time.time()
        res = subprocess.run(cmd, check=False, cwd=root, capture_output=True, text=True, env=_env(root))
        tail = (res.stdout + res.stderr).strip().splitlines()[-1:] or [""]
        return res.returncode != 0, time.time() - t, tail[0]


def _env(root: Path) -> dict:
    import os

    return {**os.environ, "PYTHONPATH": str(root), "RATIONALIGN_HAND_MUTATION": "1"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="mutation ids to run")
    ap.add_argument("--tests-all", action="store_true", help="run the whole fast suite per mutation")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    todo = [m for m in MUTATIONS if not a.only or m.id in a.only]
    if a.list:
        for m in todo:
            print(f"{m.id:32s} {m.what}")
        return 0
    survived = []
    for m in todo:
        killed, secs, tail = run_one(m, a.tests_all, sys.executable)
        print(f"{'killed  ' if killed else 'SURVIVED'} {m.id:30s} {secs:6.1f}s  {m.what}  [{tail}]", flush=True)
        if not killed:
            survived.append(m.id)
    print(f"hand mutations: {len(todo) - len(survived)}/{len(todo)} killed" +
          (f"; survived: {', '.join(survived)}" if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
