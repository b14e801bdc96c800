"""Side-by-side throughput and peak memory: our preference trainer vs TRL on the same model and pairs.

    .venv/bin/python experiments/bench_preference.py                # embedded SmolLM2-135M, fp32, ~6-8 min on 2 idle cores
    .venv/bin/python experiments/bench_preference.py --bf16         # the same, bf16 autocast in every run
    .venv/bin/python experiments/bench_preference.py --model tiny   # seconds

Runs (each in its own subprocess, so peak RSS is per run, not the maximum over all of them):
  ours-mpo        our trainer, MPO (reference-free)
  ours-dpo-cached our trainer, DPO with reference log-probs from the disk cache (precompute timed apart)
  trl-dpo         trl.DPOTrainer (reference = the same base with the LoRA adapter disabled, every step)
  trl-dpo-precomputed  trl.DPOTrainer(precompute_ref_log_probs=True): reference log-probs computed once at
                  trainer construction (timed apart), the fair baseline for ours-dpo-cached
  ours-simpo      our trainer, SimPO
  trl-cpo-simpo   trl.experimental.cpo.CPOTrainer(loss_type="simpo")
  ours-orpo       our trainer, ORPO (lam 0.1)
  trl-orpo        trl.experimental.orpo.ORPOTrainer (beta 0.1: TRL's name for ORPO's lambda)
All runs: same base model, LoRA (r, alpha, dropout, targets from the model config), the same pairs
(steps * batch_size of them, so each run sees every pair once), batch size, steps, lr, max_length and
precision: fp32 unless --bf16 (then bf16 autocast in every run). TRL's configs default to bf16=True and
disable_dropout=True, so the TRL runs set both explicitly: left at TRL's defaults they would compare
TRL's bf16 autocast (AMX/AVX512-BF16 matmuls on recent CPUs) without LoRA dropout against our fp32 with
it, a different computation (profiled here: that alone made TRL's matmuls ~2.6x cheaper per step).
tokens/s = non-pad tokens of (prompt + chosen) and (prompt + rejected) of the pairs seen, divided by
the wall time of trainer.train() (model loading and dataset tokenisation excluded for every run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from experiments.bench_runner import run_workers, worker_result, write_json

RUNS = ["ours-mpo", "ours-dpo-cached", "trl-dpo", "trl-dpo-precomputed", "ours-simpo", "trl-cpo-simpo",
        "ours-orpo", "trl-orpo"]
WORDS = ["the", "student", "teacher", "wrote", "read", "a", "long", "short", "letter", "essay", "book", "about", "his", "her", "their", "school", "trip", "yesterday", "because", "it", "was", "raining", "and", "they", "were", "late", "for", "class", "so", "we", "decided", "to", "stay", "home"]


def toy_pairs(n: int, seed: int = 0) -> list[dict]:
    """Writing-assistant-shaped pairs: a sentence to fix, a suggestion + rationale of ~40-80 tokens."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        sent = " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 24))).capitalize() + "."
        why = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 40)))
        rows.append({
            "id": f"b{i}", "task": "gec", "instruction": "Fix the grammar:", "source": sent.lower(),
            "prompt": f"Fix the grammatical errors in this sentence, then explain each correction.\n\nText: {sent.lower()}",
            "chosen": f"{sent}\nExplanation: {why}.", "rejected": f"{sent.lower()} zz\nExplanation: {why[::-1]}.",
            "chosen_reward": 0.9, "rejected_reward": 0.2,
        })
    return rows


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _peak(torch) -> dict:
    out = {"peak_rss_mb": round(_rss_mb(), 1)}
    if torch.cuda.is_available():
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _model_cfg(name: str):
    from rationalign.runner import compose

    cfg = compose([f"model={name}"]).model
    return cfg


# Both sides read the same chat-templated conversation (TRL's conversational format), so the
# comparison measures the trainers, not the prompt layout.
BENCH_SYSTEM = "You are a writing assistant."


def _bench_layout():
    from rationalign.training.chat import Layout

    return Layout("chat", BENCH_SYSTEM)


def _token_count(tok, rows, max_length) -> int:
    from rationalign.training.chat import encode_pair

    n = 0
    for r in rows:
        for c in (r["chosen"], r["rejected"]):
            p, ids = encode_pair(tok, r["prompt"], c, max_length, layout=_bench_layout())
            n += len(p) + len(ids)
    return n


def worker_ours(run: str, a) -> dict:
    import torch

    from rationalign.models import load_for_training
    from rationalign.runner import compose
    from rationalign.training import preference as P
    from rationalign.training.pairs_io import load_pref_pairs

    loss = {"ours-mpo": "mpo", "ours-dpo-cached": "dpo", "ours-simpo": "simpo", "ours-orpo": "orpo"}[run]
    mcfg = _model_cfg(a.model)
    torch.manual_seed(0)
    model, tok = load_for_training(mcfg)
    rows = toy_pairs(a.steps * a.batch_size)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "pairs.jsonl"
        path.write_text("".join(json.dumps({k: v for k, v in r.items() if k not in ("task", "instruction", "source")})
                                + "\n" for r in rows))
        pairs = load_pref_pairs(path)
        loss_cfg = compose([f"loss={loss}"]).loss
        setup = P.setup_for(loss_cfg)
        ds = P.encode_preference(pairs, tok, [p.prompt for p in pairs], a.max_length,
                                 with_rewards=setup.with_rewards, with_rationale=setup.with_rationale,
                                 layout=_bench_layout())
        extra = {}
        if setup.needs_reference:
            cache = Path(d) / "refcache"
            kw = {"cache_dir": cache, "model_identity": {"bench": a.model}, "max_length": a.max_length,
                      "batch_size": 2 * a.batch_size}
            t = time.time()
            P.reference_logps(model, ds, tok.pad_token_id, **kw)  # first run of a sweep: fills the cache
            extra["ref_precompute_s"] = round(time.time() - t, 2)
            P.attach_reference(ds, P.reference_logps(model, ds, tok.pad_token_id, **kw))  # cache hit
        from types import SimpleNamespace

        tc = SimpleNamespace(epochs=1.0, max_steps=a.steps, lr=a.lr, batch_size=a.batch_size, grad_accum=1,
                             warmup_ratio=0.0, weight_decay=0.0, bf16=a.bf16, logging_steps=a.steps, save_steps=0,
                             group_by_length=False, gradient_checkpointing=a.gradient_checkpointing)
        trainer = P.build_preference_trainer(model, tok, ds, setup, tc, Path(d) / "out", seed=0,
                                             shared_prompt=not a.no_shared_prompt, logits_chunk=a.logits_chunk)
        t = time.time()
        trainer.train()
        secs = time.time() - t
    return {"run": run, "seconds": round(secs, 2), "tokens": _token_count(tok, rows, a.max_length), **extra,
            **_peak(torch)}


def worker_trl(run: str, a) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig

    from rationalign.models import load_base_model
    mcfg = _model_cfg(a.model)
    torch.manual_seed(0)
    model, tok = load_base_model(mcfg)
    rows = toy_pairs(a.steps * a.batch_size)
    data = Dataset.from_list([{
        "prompt": [{"role": "system", "content": BENCH_SYSTEM}, {"role": "user", "content": r["prompt"]}],
        "chosen": [{"role": "assistant", "content": r["chosen"]}],
        "rejected": [{"role": "assistant", "content": r["rejected"]}],
    } for r in rows])
    lora = mcfg.lora
    peft_cfg = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                          target_modules=list(lora.target_modules), task_type="CAUSAL_LM")
    common = {"per_device_train_batch_size": a.batch_size, "max_steps": a.steps, "learning_rate": a.lr,
                  "logging_steps": a.steps, "save_strategy": "no", "report_to": [], "use_cpu": not torch.cuda.is_available(),
                  "dataloader_num_workers": 0, "max_length": a.max_length, "lr_scheduler_type": "linear", "seed": 0,
                  # TRL turns gradient checkpointing on by default; every run here uses the same setting.
                  "gradient_checkpointing": a.gradient_checkpointing,
                  # TRL's defaults are bf16=True and disable_dropout=True: set both, so every run computes in
                  # the same precision and applies the same LoRA dropout (the model config's) as ours.
                  "bf16": a.bf16, "disable_dropout": False}
    with tempfile.TemporaryDirectory() as d:
        extra = {}
        t = time.time()
        if run in ("trl-dpo", "trl-dpo-precomputed"):
            from trl import DPOConfig, DPOTrainer

            pre = run == "trl-dpo-precomputed"
            args = DPOConfig(output_dir=d, beta=0.1, precompute_ref_log_probs=pre,
                             precompute_ref_batch_size=2 * a.batch_size if pre else None, **common)
            # With precompute_ref_log_probs the reference pass runs here, in the constructor.
            trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tok, peft_config=peft_cfg)
            if pre:
                extra["ref_precompute_s"] = round(time.time() - t, 2)
        elif run == "trl-orpo":
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer

            args = ORPOConfig(output_dir=d, beta=0.1, **common)
            trainer = ORPOTrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                                  peft_config=peft_cfg)
        else:
            from trl.experimental.cpo import CPOConfig, CPOTrainer

            args = CPOConfig(output_dir=d, loss_type="simpo", beta=2.0, simpo_gamma=0.5, cpo_alpha=0.0,
                             **common)
            trainer = CPOTrainer(model=model, args=args, train_dataset=data, processing_class=tok, peft_config=peft_cfg)
        t = time.time()
        trainer.train()
        secs = time.time() - t
    return {"run": run, "seconds": round(secs, 2), "tokens": _token_count(tok, rows, a.max_length), **extra,
            **_peak(torch)}


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m", help="conf/model name (smollm2-135m | tiny | ...)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast in every run (default fp32 in every run)")
    ap.add_argument("--gradient-checkpointing", action="store_true",
                    help="checkpoint activations in every run (TRL's default; off by default here for all runs)")
    ap.add_argument("--no-shared-prompt", action="store_true",
                    help="our runs: chosen and rejected as separate rows (align.shared_prompt=false)")
    ap.add_argument("--logits-chunk", type=int, default=0, help="our runs: align.logits_chunk")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help="also write the results here")
    return ap.parse_args(argv)


def main(argv=None) -> None:
    a = parse(argv)
    if a.worker:
        import logging

        logging.disable(logging.WARNING)
        worker_result((worker_trl if a.worker.startswith("trl") else worker_ours)(a.worker, a))
        return
    args = ["--model", a.model, "--steps", str(a.steps), "--batch-size", str(a.batch_size), "--max-length",
            str(a.max_length), "--lr", str(a.lr), "--logits-chunk", str(a.logits_chunk)]
    args += ["--gradient-checkpointing"] * a.gradient_checkpointing + ["--no-shared-prompt"] * a.no_shared_prompt
    args += ["--bf16"] * a.bf16

    def show(run: str, r: dict) -> None:
        print(f"  {run:20s} {r['tokens_per_s']:9.1f} tok/s  train {r['seconds']:7.2f}s  peak RSS "
              f"{r['peak_rss_mb']:8.1f} MB" + (f"  peak CUDA {r['peak_cuda_mb']:.1f} MB" if "peak_cuda_mb" in r else "")
              + (f"  (ref precompute {r['ref_precompute_s']}s, once per cache key)" if "ref_precompute_s" in r else ""),
              flush=True)

    results = run_workers(__file__, a.runs.split(","), args, show)
    print(f"\nmodel={a.model} steps={a.steps} batch_size={a.batch_size} max_length={a.max_length} "
          f"bf16={a.bf16} gradient_checkpointing={a.gradient_checkpointing} shared_prompt={not a.no_shared_prompt} "
          f"logits_chunk={a.logits_chunk} "
          f"pairs={a.steps * a.batch_size} torch threads={os.cpu_count()} cpus")
    mem = "peak_cuda_mb" if any("peak_cuda_mb" in r for r in results.values()) else "peak_rss_mb"
    for ours, theirs in (("ours-mpo", "trl-dpo"), ("ours-dpo-cached", "trl-dpo"),
                         ("ours-dpo-cached", "trl-dpo-precomputed"), ("ours-simpo", "trl-cpo-simpo"),
                         ("ours-orpo", "trl-orpo")):
        if ours in results and theirs in results:
            o, t = results[ours], results[theirs]
            print(f"  {ours:16s} vs {theirs:14s} throughput x{o['tokens_per_s'] / t['tokens_per_s']:.2f}   "
                  f"{mem} x{o[mem] / t[mem]:.2f}")
    write_json(a.json, results)


if __name__ == "__main__":
    main()
