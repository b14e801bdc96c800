"""Issue 27, items 7 and 11-14: nothing secret in artifacts written from endpoint answers, a 4xx (not a
500 traceback) for a lone surrogate, a UTF-8 BOM stripped by every reader, errors that name the file
and the right line, and a dead endpoint that ends the stage in about one timeout with a message that
tells "timed out" from "could not connect"."""

from __future__ import annotations

import json
import time

import pytest

from rationalign.data.readers import read_dataset
from rationalign.data.records import RecordError
from rationalign.llm.client import EndpointDown
from rationalign.runner import compose, run

from .chat_server import ChatServer
from .test_data_local import LOCAL_FILES, write_tree
from .test_fail_fast import _dead_port
from .test_rationale import many, teacher
from .test_serve import client  # noqa: F401 - the fixture

KEY = "sk-i27testKEY0123456789abcdefXYZ"
BOM = "\ufeff"


# ------------------------------------------------------------------ item 7: secrets in artifacts

def test_key_echoed_in_a_teacher_answer_never_reaches_the_artifact(tmp_path, monkeypatch):
    monkeypatch.setenv("RA_I27_KEY", KEY)
    with ChatServer() as srv:
        srv.rule = lambda prompt, n: "echo_auth_ok"  # every answer quotes the Authorization header
        ov = ["stage=rationalize", "model=tiny", "rationale=teacher", f"rationale.base_url={srv.base_url}",
              "rationale.api_key_env=RA_I27_KEY", "rationale.progress=false", "data.max_labeled_per_task=2",
              f"rationale.cache_dir={tmp_path / 'cache'}", f"paths.root={tmp_path / 'out'}"]
        run(compose(ov))
        assert set(srv.auth_headers) == {f"Bearer {KEY}"}  # the key was really sent
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    d_e = [p for p in files if p.name == "d_e.jsonl"]
    assert d_e and "Authorization: Bearer ***" in d_e[0].read_text()  # the answer is kept, the key is not
    assert [p for p in files if KEY.encode() in p.read_bytes()] == []


# ------------------------------------------------------------------ item 11: serve

def test_serve_answers_a_lone_surrogate_with_a_4xx(client):  # noqa: F811
    r = client.post("/api/predict", content=b'{"text": "She go\\ud800", "task": "gec"}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"].startswith("text: not valid Unicode (lone surrogate")
    r = client.post("/api/predict", content=b'{"text": "She go.", "task": "gec\\udc80"}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and "task 'gec\\udc80'" in r.json()["error"]


# ------------------------------------------------------------------ item 12: BOM

BOM_CASES = {  # format -> (path argument(s), reader options)
    "m2": (["conll14/official-2014.combined.m2"], {}),
    "iterater": (["iterater/fluency/test.jsonl"], {}),
    "stsb": (["stsb/stsb-en-test.csv"], {"task": "paraphrase"}),
    "wnc": (["wnc/biased.word.test.tsv"], {"task": "neutralization"}),
    "asset": (["asset/asset.test.orig", "asset/asset.test.simp.0", "asset/asset.test.simp.1"],
              {"task": "simplification"}),
    "gyafc": (["gyafc/Entertainment_Music/test"], {}),
    "coedit": (["coedit/train.jsonl"], {}),
}


@pytest.mark.parametrize("fmt", sorted(BOM_CASES))
def test_every_reader_strips_a_bom(tmp_path, fmt):
    plain = write_tree(tmp_path / "plain", LOCAL_FILES)
    bom = write_tree(tmp_path / "bom", {rel: BOM + text for rel, text in LOCAL_FILES.items()})
    paths, opts = BOM_CASES[fmt]
    want = read_dataset(fmt, *(plain / p for p in paths), **opts).records
    got = read_dataset(fmt, *(bom / p for p in paths), **opts).records
    assert want and [(r.source, r.target, r.references) for r in got] == \
        [(r.source, r.target, r.references) for r in want]


def test_records_and_predict_inputs_strip_a_bom(tmp_path):
    from rationalign.assistant import read_inputs
    from rationalign.data.records import load_records

    row = {"id": "a", "task": "gec", "instruction": "Fix:", "source": "He go .", "target": "He goes ."}
    (tmp_path / "r.jsonl").write_text(BOM + json.dumps(row) + "\n", encoding="utf-8")
    assert load_records(tmp_path / "r.jsonl")[0].id == "a"
    (tmp_path / "in.txt").write_text(BOM + "She go home .\n", encoding="utf-8")
    (tmp_path / "in.jsonl").write_text(BOM + json.dumps({"source": "She go home ."}) + "\n", encoding="utf-8")
    for name in ("in.txt", "in.jsonl"):
        assert read_inputs(tmp_path / name, ["gec"]) == [("gec", "She go home .", None)]


# ------------------------------------------------------------------ item 13: errors naming the file

@pytest.mark.parametrize("text,what", [("", "empty file"), ('{"r": 16,\n "peft_type": }', "at line 2 column")])
def test_invalid_adapter_config_is_named(tmp_path, text, what):
    from rationalign.engines.snapshot import adapter_config
    from rationalign.models import load_trained

    (tmp_path / "adapter_config.json").write_text(text)
    msg = rf"{tmp_path / 'adapter_config.json'}: invalid JSON \(.*{what}"
    with pytest.raises(ValueError, match=msg):
        load_trained({"source": "tiny"}, tmp_path)
    with pytest.raises(ValueError, match=msg):
        adapter_config(tmp_path)


def test_unclosed_csv_quote_is_reported_where_it_opens(tmp_path):
    f = tmp_path / "sts.csv"
    f.write_text('A man plays.,"A man is playing, loudly.,5.0\nA dog.,A cat.,1.2\nHi.,Hello.,5\n')
    with pytest.raises(RecordError, match=rf"^{f}:1: unclosed quote: a quoted field opened on this line runs to "
                                          r"line 3 \(the end of the file\)"):
        read_dataset("stsb", f, task="paraphrase")


# ------------------------------------------------------------------ item 14: dead endpoints

def test_hanging_endpoint_ends_in_about_one_timeout_and_says_timed_out(tmp_path):
    """Default retries (5), backoff (1 s base) and breaker (5); a 0.3 s timeout stands in for 60 s.
    Before: every request tried 6 times with backoff between (~20 s here, 392 s at the defaults)."""
    with ChatServer(hang_s=3.0) as srv:
        srv.rule = lambda prompt, n: "timeout"
        src = teacher(srv, tmp_path, max_retries=5, backoff_base_s=1.0, backoff_max_s=60.0, concurrency=8)
        t0 = time.time()
        with pytest.raises(EndpointDown) as e:
            src.explain(many(12))
        took = time.time() - t0
    assert "5 requests in a row timed out (no answer within timeout_s=0.3s) from" in str(e.value)
    assert "could not connect" not in str(e.value) and "rerun" in str(e.value)
    assert took < 3.0, took  # about one timeout_s (+ the backoff of a retry already asleep)


def test_refused_endpoint_says_could_not_connect(tmp_path):
    class Down:
        base_url = f"http://127.0.0.1:{_dead_port()}/v1"

    src = teacher(Down(), tmp_path, max_retries=5, backoff_base_s=0.05, concurrency=2)
    with pytest.raises(EndpointDown, match=r"5 requests in a row could not connect to http://127\.0\.0\.1"):
        src.explain(many(4))
