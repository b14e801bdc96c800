"""Rationale sources: template wording, teacher over a faulty server, local, file, registry."""

import json
import logging
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rationalign.data.records import Record, RecordError
from rationalign.edits import Edit
from rationalign.rationale import (
    SOURCES,
    ChatClient,
    ChatError,
    RationaleError,
    TeacherSource,
    build_source,
    template_rationale,
)
from rationalign.rationale.prompt import clean_output, paper_teacher_prompt
from rationalign.rationale.template import edit_sentence

try:
    from tests.chat_server import ChatServer, reply_for
except ImportError:  # tests/ is not a package when pytest puts it on sys.path itself
    from chat_server import ChatServer, reply_for

CONF = Path(__file__).resolve().parents[1] / "conf" / "rationale"
KEY = "sk-test-7f3c9e1b5a2d4c6e8f0a1b2c"


def rec(i, source="He go to school .", target="He goes to school .", task="gec"):
    return Record(id=f"r{i}", task=task, instruction="Fix the grammar.", source=source, target=target)


# ---- template --------------------------------------------------------------------------------

@pytest.mark.parametrize("edit, sentence", [
    (Edit(1, 2, "go", "goes", "R:VERB:SVA"),
     'The word "go" should be replaced by "goes" because the verb must agree with its subject (subject-verb agreement).'),
    (Edit(2, 2, "", "a", "M:DET"), 'The word "a" should be inserted because a determiner is needed before the noun.'),
    (Edit(2, 3, "the", "", "U:DET"), 'The word "the" should be deleted because the determiner is not needed here.'),
    (Edit(1, 2, "recieved", "received", "R:SPELL"),
     'The word "recieved" should be replaced by "received" because it is misspelled.'),
    (Edit(3, 4, "in", "on", "R:PREP"),
     'The word "in" should be replaced by "on" because a different preposition is required in this context.'),
    (Edit(1, 2, "go", "went", "R:VERB:TENSE"),
     'The word "go" should be replaced by "went" because the verb tense must fit the time the sentence describes.'),
    (Edit(4, 5, ",", ".", "R:PUNCT"),
     'The word "," should be replaced by "." because the wrong punctuation mark is used.'),
    (Edit(0, 1, "london", "London", "R:ORTH"),
     'The word "london" should be replaced by "London" because the capitalisation or spacing is incorrect.'),
    (Edit(0, 3, "in the morning", "", "U:OTHER"),
     'The word "in the morning" should be deleted because it is unnecessary and makes the sentence ungrammatical.'),
    (Edit(2, 4, "fast ran", "ran fast", "R:WO"),
     'The word "fast ran" should be replaced by "ran fast" because the words are in the wrong order.'),
])
def test_template_sentence_per_type(edit, sentence):
    assert edit_sentence(edit, "gec") == sentence


def test_template_task_aware_reasons_only_for_generic_types():
    generic = Edit(1, 4, "is a very", "seems", "R:OTHER")
    assert edit_sentence(generic, "simplification").endswith("because it makes the sentence simpler.")
    assert edit_sentence(generic, "simplification").startswith('The word "is a very" should be replaced by "seems"')
    assert edit_sentence(Edit(0, 1, "very", "", "U:ADV"), "clarity").endswith(
        "because removing it makes the text clearer and more concise.")
    # A specific grammar type keeps its reason whatever the task.
    assert edit_sentence(Edit(1, 2, "recieved", "received", "R:SPELL"), "simplification").endswith("misspelled.")
    assert "neutral" in edit_sentence(generic, "neutralization")
    formal = Record("f", "formality", "Make the sentence more informal.", "a", "b")
    assert "more informal" in template_rationale([generic], formal.task, formal.instruction)
    assert "more formal" in template_rationale([generic], "formality", "Rewrite it in a formal style.")


def test_template_no_edits_and_multi_edit():
    assert template_rationale([], "gec") == "The sentence is already grammatically correct, so no change is needed."
    assert "no change" in template_rationale([], "paraphrase")
    two = template_rationale([Edit(1, 2, "go", "goes", "R:VERB:SVA"), Edit(2, 2, "", "a", "M:DET")])
    assert two.count("because") == 2 and two.startswith('The word "go"')


def test_template_source_end_to_end_with_errant():
    records = [rec(0), rec(1, "Same .", "Same ."), Record("u", "gec", "Fix.", "No target here .")]
    src = build_source("template")
    out = src.explain(records)
    assert out[0] == ('The word "go" should be replaced by "goes" because the verb must agree with its '
                      'subject (subject-verb agreement).')
    assert "no change" in out[1]
    assert out[2] is None  # unlabeled record: reported, not silently dropped
    assert [(f.id, f.error) for f in src.last_result.failures] == [("u", "record has no target to explain")]
    # Edits passed in by the caller are used as given.
    assert src.explain([rec(0)], [[Edit(2, 2, "", "a", "M:DET")]])[0].startswith('The word "a" should be inserted')


def test_none_source():
    src = build_source({"name": "none"})
    assert src.explain([rec(0), rec(1)]) == [None, None]
    assert src.last_result.ok


# ---- teacher over the fault-injecting server ----------------------------------------------------

def teacher(server, tmp_path, **kw):
    cfg = {"name": "teacher", "base_url": server.base_url, "model": "teacher-m", "api_key_env": None,
           "max_retries": 8, "timeout_s": 0.3, "backoff_base_s": 0.001, "backoff_max_s": 0.01,
           "concurrency": 4, "cache_dir": str(tmp_path / "cache"), "progress": False}
    cfg.update(kw)
    return build_source(cfg)


def many(n):
    return [rec(i, f"He go to school number {i} .", f"He goes to school number {i} .") for i in range(n)]


def test_teacher_survives_faults_and_loses_no_record(tmp_path):
    records = many(36)
    with ChatServer(hang_s=0.8, retry_after="0") as srv:
        srv.inject("429", "500", "503", "timeout", "non_json", "no_choices", "empty", "disconnect", "429", "echo_auth")
        srv.rule = lambda prompt, n: "503" if n == 1 and ("number 1" in prompt) else None  # r1, r10..r19
        src = teacher(srv, tmp_path)
        out = src.explain(records)
        prompts = [src.prompt(r, [Edit(1, 2, "go", "goes", "R:VERB:SVA")]) for r in records]
        assert out == [clean_output(reply_for(p)) for p in prompts]  # each record got its own answer
        assert src.last_result.ok
        assert srv.faults_served >= 10
        # Every fault cost exactly one retry; nothing was asked twice after succeeding.
        assert srv.requests == len(records) + srv.faults_served
        assert all(body["model"] == "teacher-m" and body["temperature"] == 0.0 for body in srv.bodies)


def test_cache_makes_rerun_free(tmp_path):
    records = many(12)
    with ChatServer() as srv:
        first = teacher(srv, tmp_path).explain(records)
        assert srv.requests == 12
    with ChatServer() as srv2:  # a new server and a new source: only the disk cache can answer
        again = teacher(srv2, tmp_path).explain(records)
        assert srv2.requests == 0
        assert again == first
        # A changed temperature is a different cache key.
        teacher(srv2, tmp_path, temperature=0.7).explain(records[:2])
        assert srv2.requests == 2
    files = list((tmp_path / "cache").rglob("*.json"))
    assert len(files) == 14


def test_duplicate_prompts_asked_once(tmp_path):
    with ChatServer() as srv:
        out = teacher(srv, tmp_path, cache_dir=None).explain([rec(0), rec(1), rec(2)])
        assert srv.requests == 1 and len(set(out)) == 1 and out[0]


def test_permanent_failure_is_reported_not_dropped(tmp_path):
    records = many(8) + [rec("P", "POISON go here .", "POISON goes here .")]
    with ChatServer() as srv:
        srv.rule = lambda prompt, n: "500" if "POISON" in prompt else None
        src = teacher(srv, tmp_path, max_retries=2)
        result = src.explain_report(records)
        poison = [p for p in srv.prompts if "POISON" in p]
        assert len(poison) == 3  # 1 + max_retries
    assert result.rationales[-1] is None
    assert all(r for r in result.rationales[:-1])
    assert [f.id for f in result.failures] == ["rP"]
    assert "HTTP 500" in result.failures[0].error and "after 3 attempts" in result.failures[0].error
    assert result.summary()["failed"] == 1 and result.summary()["explained"] == 8
    with pytest.raises(RationaleError, match="rP"):
        result.raise_if_failed()
    # Failures are not cached: a rerun retries only the failed record.
    with ChatServer() as srv:
        again = teacher(srv, tmp_path, max_retries=2).explain_report(records)
        assert srv.requests == 1 and again.ok


def test_api_key_only_in_auth_header(tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.setenv("RA_TEST_TEACHER_KEY", KEY)
    caplog.set_level(logging.DEBUG)
    records = many(6) + [rec("P", "POISON go here .", "POISON goes here .")]
    with ChatServer() as srv:
        srv.inject("echo_auth", "echo_auth", "429")
        srv.rule = lambda prompt, n: "echo_auth" if "POISON" in prompt else None
        src = teacher(srv, tmp_path, api_key_env="RA_TEST_TEACHER_KEY", max_retries=3, progress=True)
        result = src.explain_report(records)
        assert srv.auth_headers and set(srv.auth_headers) == {f"Bearer {KEY}"}  # the key was really used
    assert [f.id for f in result.failures] == ["rP"]
    assert "Bearer ***" in result.failures[0].error  # the server echoed it; we scrubbed it
    with pytest.raises(RationaleError) as exc:
        result.raise_if_failed()
    out, err = capsys.readouterr()
    leaks = {"log": caplog.text, "stdout": out, "stderr": err, "exception": str(exc.value),
             "failures": json.dumps(result.summary()), "repr": repr(src.client), "config": repr(src.config)}
    leaks.update({str(p): p.read_text() for p in (tmp_path / "cache").rglob("*") if p.is_file()})
    assert len(leaks) > 7  # cache files were written
    assert [where for where, text in leaks.items() if KEY in text] == []


def test_missing_key_env_names_variable(monkeypatch):
    monkeypatch.delenv("RA_TEST_NO_SUCH_KEY", raising=False)
    with pytest.raises(ValueError, match="RA_TEST_NO_SUCH_KEY"):
        build_source({"name": "teacher", "api_key_env": "RA_TEST_NO_SUCH_KEY", "base_url": "http://127.0.0.1:1/v1"})
    with pytest.raises(ValueError, match="rationale.api_key: secrets are never read from config"):
        build_source({"name": "teacher", "api_key": "sk-oops"})


@pytest.mark.parametrize("limit", [1, 3])
def test_concurrency_is_bounded(tmp_path, limit):
    with ChatServer(delay_s=0.05) as srv:
        # timeout_s well above the server's delay: a client-side timeout under load would retry a
        # request the server still holds and count as one more in flight.
        out = teacher(srv, tmp_path, concurrency=limit, cache_dir=None, timeout_s=5.0).explain(many(15))
        assert all(out)
        assert srv.max_inflight <= limit
        assert srv.max_inflight >= min(limit, 2)  # and the workers really ran in parallel


def test_client_honours_retry_after_and_backs_off():
    sleeps = []
    with ChatServer(retry_after="7") as srv:
        client = ChatClient(srv.base_url, "m", backoff_base_s=1.0, backoff_max_s=3.0, max_retries=5,
                            sleep=sleeps.append)
        srv.inject("429", "500", "503", "500")
        assert client.complete([{"role": "user", "content": "hi"}]) == reply_for("hi")
    assert sleeps[0] == 7.0  # Retry-After, not our own schedule
    assert 1.0 <= sleeps[1] <= 2.0 and 2.0 * 0.5 <= sleeps[2] <= 3.0 and 1.5 <= sleeps[3] <= 3.0  # 2^n, capped


def test_client_does_not_retry_client_errors():
    with ChatServer() as srv:
        client = ChatClient(srv.base_url, "m", max_retries=5, sleep=lambda s: None)
        srv.inject("400")
        with pytest.raises(ChatError) as exc:
            client.complete([{"role": "user", "content": "hi"}])
        assert exc.value.status == 400 and not exc.value.retryable and srv.requests == 1


def test_client_accepts_full_url_and_unreachable_host_fails_cleanly():
    assert ChatClient("http://h/v1/chat/completions", "m").url == "http://h/v1/chat/completions"
    client = ChatClient("http://127.0.0.1:9/v1", "m", max_retries=1, timeout_s=0.5, sleep=lambda s: None)
    with pytest.raises(ChatError, match="after 2 attempts"):
        client.complete([{"role": "user", "content": "hi"}])


def test_teacher_prompt_is_fig3_and_braces_in_texts_stay():
    r = Record("x", "gec", "Fix {this}.", "a {b} c", "a {d} c")
    p = paper_teacher_prompt()(r, [Edit(1, 2, "{b}", "{d}", "R:OTHER")])
    assert p.startswith("You are given a pair of English sentences along with a list of atomic edits.")
    assert "###Source sentence:\na {b} c\n\n###Target sentence:\na {d} c\n\n###Edits:\n1. \"{b}\" -> \"{d}\"" in p
    assert "Specifically, the target sentence corrects the grammar mistakes in the source sentence." in p
    # The template lives in prompts.teacher_template only: the source config has no copy of it.
    with pytest.raises(ValueError, match="prompt_template"):
        build_source({"name": "teacher", "api_key_env": None, "prompt_template": "{source} only"})
    assert clean_output("###Explanation: The word x") == "The word x"
    assert clean_output("explanation:  The word x") == "The word x"


# ---- local ---------------------------------------------------------------------------------------

class FakeGenerator:
    def __init__(self, bad=None):
        self.calls, self.bad = [], bad

    def generate(self, prompts, **sampling):
        self.calls.append((list(prompts), sampling))
        if self.bad and any(self.bad in p for p in prompts):
            raise RuntimeError("CUDA out of memory")
        return ["###Explanation: because " + p.split("###Source sentence:\n")[1].split("\n")[0] for p in prompts]


def test_local_source_batches_and_isolates_failures():
    gen = FakeGenerator(bad="POISON")
    src = build_source({"name": "local", "batch_size": 4, "sampling": {"temperature": 0.0, "max_new_tokens": 9}},
                       generator=gen)
    records = many(6) + [rec("P", "POISON go .", "POISON goes .")]
    out = src.explain(records)
    assert out[:6] == [f"because He go to school number {i} ." for i in range(6)]
    assert out[6] is None and [f.id for f in src.last_result.failures] == ["rP"]
    assert "CUDA out of memory" in src.last_result.failures[0].error
    assert gen.calls[0][1] == {"temperature": 0.0, "max_new_tokens": 9}
    assert len(gen.calls[0][0]) == 4


def test_local_source_needs_generator_and_consistent_outputs():
    with pytest.raises(ValueError, match="needs a generator"):
        build_source("local")

    class Short:
        def generate(self, prompts, **kw):
            return ["x"]

    with pytest.raises(RuntimeError, match="1 outputs for 2 prompts"):
        build_source("local", generator=Short()).explain([rec(0, "A go .", "A goes ."), rec(1)])


# ---- file ------------------------------------------------------------------------------------------

def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_file_source_reads_and_reports_missing(tmp_path):
    p = write(tmp_path / "r.jsonl", ['{"id": "r0", "rationale": "Because SVA."}', "",
                                     '{"id": "r1", "task": "gec", "source": "x"}'])
    src = build_source({"name": "file", "path": p})
    out = src.explain([rec(0), rec(1), rec(2)])
    assert out == ["Because SVA.", None, None]
    fails = {f.id: f.error for f in src.last_result.failures}
    assert fails["r1"] == f"{p}:3: no 'rationale' for this id"
    assert fails["r2"] == f"id not found in {p}"


@pytest.mark.parametrize("lines, message", [
    (['{"id": "a", "rationale": "ok"}', "{not json"], r"r\.jsonl:2: invalid JSON"),
    (['{"id": "a", "rationale": 3}'], r"r\.jsonl:1: field 'rationale' must be a string"),
    (['{"rationale": "no id"}'], r"r\.jsonl:1: field 'id' must be a non-empty string"),
    (['["a", "b"]'], r"r\.jsonl:1: expected a JSON object"),
    (['{"id": "a", "rationale": "x"}', '{"id": "a", "rationale": "y"}'], r"r\.jsonl:2: duplicate id 'a' \(first at .*r\.jsonl:1\)"),
])
def test_file_source_bad_rows_name_file_and_line(tmp_path, lines, message):
    src = build_source({"name": "file", "path": write(tmp_path / "r.jsonl", lines)})
    with pytest.raises(RecordError, match=message):
        src.explain([rec(0)])


def test_file_source_config_errors(tmp_path):
    with pytest.raises(ValueError, match="rationale.path: required"):
        build_source("file")
    with pytest.raises(FileNotFoundError, match="rationale.path: no such file"):
        build_source({"name": "file", "path": str(tmp_path / "nope.jsonl")}).explain([rec(0)])


# ---- registry and shipped configs ---------------------------------------------------------------------

def test_registry_errors_name_the_key():
    assert set(SOURCES) == {"none", "template", "teacher", "local", "file"}
    with pytest.raises(ValueError, match="rationale.name: unknown source 'gpt'"):
        build_source("gpt")
    with pytest.raises(ValueError, match="rationale.concurency: unknown key for source 'teacher'"):
        build_source({"name": "teacher", "concurency": 4})


@pytest.mark.parametrize("name", ["none", "template", "teacher", "local", "file"])
def test_shipped_yaml_matches_config_dataclass(name, monkeypatch):
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))
    assert cfg["name"] == name
    from rationalign.rationale.base import parse_config

    parsed = parse_config(name, cfg)
    if name == "teacher":
        assert "prompt_template" not in cfg and not hasattr(parsed, "prompt_template")
        assert "api_key" not in cfg and parsed.api_key_env == "OPENAI_API_KEY"
        monkeypatch.setenv("OPENAI_API_KEY", "sk-dummy")
        assert isinstance(build_source(OmegaConf.load(CONF / "teacher.yaml")), TeacherSource)
