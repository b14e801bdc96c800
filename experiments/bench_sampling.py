"""Side-by-side sampling throughput: engine.prefill_once vs plain transformers generate.

    .venv/bin/python experiments/bench_sampling.py                  # embedded SmolLM2-135M, a few minutes
    .venv/bin/python experiments/bench_sampling.py --model tiny     # seconds

Both runs use the same HF engine, the same prompts (the paper's Table 8 prompts for the demo corpus's
unlabeled inputs), the same M, sampling settings, batch size and max_new_tokens; each runs in its own
subprocess so its peak RSS is its own.
  generate       HFEngine(prefill_once=False): model.generate(num_return_sequences=M)
  prefill-once   HFEngine(prefill_once=True): each prompt batch prefilled once, finished rows dropped
tokens/s = generated tokens (the completions re-tokenised, EOS excluded) / wall time of engine.sample
(model loading excluded). `--json` writes one object per run with tokens, seconds, peak_rss_mb.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from experiments.bench_runner import run_workers, worker_result, write_json

RUNS = ["generate", "prefill-once"]


def worker(run: str, a) -> dict:
    import torch

    from rationalign.data.splits import load_split
    from rationalign.engines import build_engine
    from rationalign.runner import compose
    from rationalign.stages.common import user_message

    cfg = compose([f"model={a.model}", "data=demo", "task=all", f"engine.batch_size={a.batch_size}",
                   f"engine.prefill_once={run == 'prefill-once'}", f"paths.root={a.root}"])
    records = load_split(cfg, "unlabeled")[: a.prompts]
    prompts = [user_message(cfg, r) for r in records]
    torch.manual_seed(0)
    with build_engine(cfg, progress=False) as eng:
        t = time.perf_counter()
        outs = eng.sample(prompts, n=a.m, temperature=a.temperature, top_p=a.top_p, top_k=a.top_k,
                          presence_penalty=a.presence_penalty, max_new_tokens=a.max_new_tokens, seed=0)
        seconds = time.perf_counter() - t
        tokens = sum(len(eng.tok(o, add_special_tokens=False).input_ids) for row in outs for o in row)
        prompt_tokens = sum(len(p) for p in eng.encode(prompts))
    return {"run": run, "tokens": tokens, "seconds": round(seconds, 3), "prompts": len(prompts),
            "prompt_tokens": prompt_tokens,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)}


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--m", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.8)  # the demo's sampling (conf/experiment/demo.yaml)
    ap.add_argument("--top-p", type=float, default=0.9)
    ap.add_argument("--top-k", type=int, default=50)
    ap.add_argument("--presence-penalty", type=float, default=0.0)
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--root", default=str(REPO / "outputs" / "bench"))
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help="also write the results here")
    return ap.parse_args(argv)


def main(argv=None) -> None:
    a = parse(argv)
    if a.worker:
        import logging

        logging.disable(logging.WARNING)
        worker_result(worker(a.worker, a))
        return

    def show(run: str, r: dict) -> None:
        print(f"  {run:14s} {r['tokens_per_s']:8.1f} generated tok/s  ({r['tokens']} tokens in {r['seconds']:.1f}s)"
              f"  peak RSS {r['peak_rss_mb']:.1f} MB", flush=True)

    results = run_workers(__file__, a.runs.split(","), sys.argv[1:] if argv is None else list(argv), show)
    print(f"\nmodel={a.model} prompts={a.prompts} M={a.m} batch_size={a.batch_size} "
          f"max_new_tokens={a.max_new_tokens} temperature={a.temperature} top_p={a.top_p} top_k={a.top_k}")
    if "generate" in results and "prefill-once" in results:
        o, t = results["prefill-once"], results["generate"]
        print(f"  prefill-once vs generate: throughput x{o['tokens_per_s'] / t['tokens_per_s']:.2f}   "
              f"peak RSS x{o['peak_rss_mb'] / t['peak_rss_mb']:.2f}")
    write_json(a.json, results)


if __name__ == "__main__":
    main()
