"""The rationale / pair-rationale / judge / prompts options: one registry per group with a typed
dataclass per entry, one EndpointConfig, one list of secret-bearing keys, a typed `prompts` node."""

import ast
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rationalign.components import import_components
from rationalign.judge import JUDGES, JudgeConfig, parse_judge_config
from rationalign.llm.client import EndpointConfig
from rationalign.rationale import SOURCES, StageOptions, TeacherConfig, parse_config, source_options
from rationalign.rationale.pairs import PAIR_SOURCES, PairLocalConfig, PairTeacherConfig, parse_pair_rationale_config
from rationalign.registry import REGISTRIES
from rationalign.runner import compose
from rationalign.validate import ConfigError, validate

ROOT = Path(__file__).resolve().parents[1]


def test_each_group_has_one_registry_with_a_dataclass_per_shipped_yaml():
    for reg, group in ((SOURCES, "rationale"), (PAIR_SOURCES, "pair_rationale"), (JUDGES, "judge")):
        assert REGISTRIES[reg.kind] is reg and reg.group == group
        shipped = sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))
        assert reg.names() == shipped, group
        assert all(e.config is not None for e in reg.entries())


@pytest.mark.parametrize("group, parse", [
    ("rationale", lambda node: parse_config(node["name"], source_options(node))),
    ("pair_rationale", parse_pair_rationale_config),
    ("judge", parse_judge_config),
])
def test_every_shipped_option_is_a_field_of_its_entry(group, parse, monkeypatch):
    """Composed as a run sees it (defaults lists, interpolations): every key is the entry's own."""
    reg = {"rationale": SOURCES, "pair_rationale": PAIR_SOURCES, "judge": JUDGES}[group]
    for name in reg.names():
        extra = [f"{group}.path=x.jsonl"] if name == "file" else []
        node = OmegaConf.to_container(compose([f"{group}={name}", *extra])[group], resolve=True)
        typed = parse(node)
        assert type(typed) is reg.entry(name).config, (group, name)
        fields = set(vars(typed))
        assert set(source_options(node) if group == "rationale" else node) <= fields, (group, name)


def test_one_endpoint_config_for_every_llm_caller():
    for cls in (TeacherConfig, JudgeConfig, PairTeacherConfig, PairLocalConfig):
        assert issubclass(cls, EndpointConfig), cls
    defined = [p for p in (ROOT / "rationalign").rglob("*.py")
               if any(isinstance(n, ast.ClassDef) and n.name == "EndpointConfig" for n in ast.walk(ast.parse(p.read_text())))]
    assert [p.relative_to(ROOT).as_posix() for p in defined] == ["rationalign/llm/client.py"]


@pytest.mark.parametrize("key", ["api_key", "hf_token", "db_password", "key", "passwd", "client_secret"])
def test_every_consumer_treats_the_same_keys_as_secret(key):
    from rationalign.argv_guard import check_argv
    from rationalign.sweep import parse_overrides
    from rationalign.tracking import redact

    assert check_argv([f"+rationale.{key}=abc"])
    assert parse_overrides([f"+rationale.{key}=abc"]) == {f"rationale.{key}": "***"}
    assert redact({key: "abc"}) == {key: "***"}
    for parse, where in ((lambda o: parse_config("teacher", o), "rationale"), (parse_judge_config, "judge"),
                         (parse_pair_rationale_config, "pair_rationale")):
        with pytest.raises(ValueError, match=rf"^{where}=\w+: {where}\.{key}: secrets are never read"):
            parse({key: "abc"})


@pytest.mark.parametrize("key", ["api_key_env", "max_new_tokens", "token_order", "keys"])
def test_names_that_only_look_alike_are_not_secret(key):
    from rationalign.argv_guard import check_argv
    from rationalign.tracking import redact

    assert check_argv([f"x.{key}=abc"]) is None
    assert redact({key: "abc"}) == {key: "abc"}


def test_prompts_node_is_typed_at_composition():
    cfg = compose([])
    assert OmegaConf.get_type(cfg.prompts).__name__ == "PromptsConfig"
    with pytest.raises(Exception, match="foo"):
        compose(["prompts.foo=1"])
    # prompts.response.position reached no code; the response order is rationale.position only.
    with pytest.raises(Exception, match="position"):
        compose(["prompts.response.position=before"])


def test_stage_options_of_the_rationale_node():
    import_components()
    assert StageOptions().position == "after" and StageOptions().on_error == "fail"
    with pytest.raises(ConfigError, match=r"rationale\.on_error=maybe"):
        validate(compose(["rationale.on_error=maybe"]), data=False)
    assert "position" not in source_options({"name": "template", "position": "before", "on_error": "skip"})
