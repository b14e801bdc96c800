"""Config composition and validation: errors name the key, before any model loads."""

import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from rationalign.components import import_components
from rationalign.runner import compose
from rationalign.validate import ConfigError, validate

from .conftest import REPO


def test_default_composes_with_every_group():
    cfg = compose([])
    for group in ("model", "task", "data", "loss", "rationale", "engine", "stage", "tracking", "prompts"):
        assert group in cfg, group
    assert cfg.model.name == "smollm2-135m"
    assert cfg.loss.name == "mpo" and cfg.loss.lam == 0.8 and cfg.loss.beta == 0.01 and cfg.loss.gamma == 1.0
    assert cfg.model.lora.r == 16 and cfg.model.lora.alpha == 16 and cfg.model.lora.dropout == 0.05


def test_task_all_has_eight_specs():
    cfg = compose(["task=all"])
    assert len(cfg.task.names) == 8 and set(cfg.task.names) == set(cfg.task.specs)


@pytest.mark.parametrize("override,needle", [
    ("model.lora.rr=3", "rr"),
    ("loss.lamda=0.3", "lamda"),
    ("sft.loss.reductio=sum", "reductio"),
])
def test_bad_key_or_value_fails_at_composition(override, needle):
    with pytest.raises((ConfigCompositionException, ValidationError)) as e:
        compose([override])
    assert needle in str(e.value) or needle in str(e.value.__cause__)


def test_semantic_validation_names_the_key():
    import_components()
    with pytest.raises(ConfigError, match="stage=nope"):
        validate(compose(["stage.name=nope"]))
    with pytest.raises(ConfigError, match="data.labeled"):
        validate(compose(["data.labeled=/no/such/file.jsonl"]))
    with pytest.raises(ConfigError, match="rationale.position"):
        validate(compose(["rationale.position=sideways"]))
    with pytest.raises(ConfigError, match="rationale.temprature"):
        validate(compose(["rationale=teacher", "+rationale.temprature=0.5"]))
    with pytest.raises(ConfigError, match="model.path"):
        validate(compose(["model=hf", "model.path=null"]))
    validate(compose(["stage=quark"]))  # QUARK reads quark.*, not a loss group


@pytest.mark.parametrize("overrides, message", [
    (["loss.beta=high"], r"loss=mpo: loss.beta=high: wrong type \(Value 'high'"),
    (["loss.ce_reduction=median"], "loss.ce_reduction=median: expected one of mean, sum"),
    (["loss=dpo", "loss.beta=0"], "loss.beta=0.0: out of range"),
    # each loss has exactly its own keys: the error names the key and lists the loss's keys
    (["loss=dpo", "+loss.lam=1"], r"loss=dpo: loss.lam: unknown key \(known: beta\)"),
    (["loss=simpo", "+loss.margin_scale=outside"], r"loss.margin_scale: unknown key \(known: beta, ce_reduction, gamma, lam\)"),
    (["loss=mpo", "+loss.rationale_reduction=sum"], "loss.rationale_reduction: unknown key"),
    (["loss.name=nope"], "loss.name=nope: unknown loss; known: cpo, dpo, mpo, orpo, rdpo, rorpo, simpo"),
    (["sft.loss.reduction=median"], "sft.loss.reduction=median: expected one of mean, sequence_mean, sum"),
    (["sft.loss.name=bt"], "sft.loss.name=bt: unknown token loss; known: sft"),
    (["+reward.loss.margin=1"], r"reward.loss.margin: unknown key \(it takes no options\)"),
])
def test_loss_options_are_checked_by_their_registry_entry(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose(overrides), data=False)


def test_the_loss_group_holds_only_preference_losses():
    for name in ("sft", "bt", "quark"):
        with pytest.raises((ConfigCompositionException, ConfigError), match=f"loss.*{name}"):
            compose([f"loss={name}"])
    cfg = compose([])
    assert dict(cfg.sft.loss) == {"name": "sft", "reduction": "mean"} and dict(cfg.reward.loss) == {"name": "bt"}


def test_cli_reports_bad_override_in_one_line_without_loading_a_model():
    r = subprocess.run([sys.executable, "-m", "rationalign", "loss.lamda=1"], cwd=REPO,
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode != 0
    first = next(line for line in r.stderr.splitlines() if line.strip())
    assert "lamda" in first
    assert "Converting" not in r.stderr and "Loading weights" not in r.stderr


def test_help_lists_groups():
    r = subprocess.run([sys.executable, "-m", "rationalign", "--help"], cwd=REPO,
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0
    for group in ("model:", "task:", "loss:", "stage:", "rationale:", "engine:", "data:"):
        assert group in r.stdout
