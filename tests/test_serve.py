"""stage=serve: the API behind the page (bounds, errors, one model load), and the page itself in a real
headless Chromium (Debian's chromium + chromium-driver; skipped with the reason where they are missing)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rationalign.assistant import PredictInputError, explain_outputs
from rationalign.web.app import create_app

TEXT = "She go to school yesterday."
TWO = "She go to school and he like it."  # two edits; the free rationale explains only the first
ANSWERS = {TEXT: 'She went to school yesterday.\nExplanation: The word "go" should be replaced by "went" because '
                 "the verb tense must fit the time the sentence describes.",
           TWO: 'She went to school and he likes it.\nExplanation: The word "go" should be replaced by "went" '
                "because of the tense."}


class ScriptedReasons:
    """Grounded decoding's engine, scripted: the reason continuing 'The word "X" ...' is 'it is the reason for X.'"""

    seq2seq = False

    def __init__(self):
        from rationalign.models import load_tokenizer

        self.tok = load_tokenizer({"source": "tiny"})

    def encode(self, prompts):
        return [self.tok(p, add_special_tokens=False)["input_ids"] for p in prompts]

    def continue_ids(self, groups, *, max_new_tokens, stop=None):
        texts = [[self.tok.decode(list(p) + list(t)) for t in tails] for p, tails in groups]
        return [[f"it is the reason for {t.rsplit('The word', 1)[1].split(chr(34))[1]}. More" for t in g] for g in texts]


class ScriptedAssistant:
    """The page's view of an assistant, with the model's outputs scripted (edits and alignment are real;
    grounded rationales go through rationale/grounded.py with scripted reasons)."""

    tasks = ("gec", "fluency")
    rationale_decoding = "free"

    def answer(self, items, rationale_decoding=None):
        from rationalign.rationale.grounded import grounded_answers

        for task, _ in items:
            if task not in self.tasks:
                raise PredictInputError(f"task '{task}': not one of the loaded tasks {self.tasks}")
        tasks, sources = [t for t, _ in items], [s for _, s in items]
        outs = [ANSWERS.get(s, s + "\nExplanation: No change is needed.") for s in sources]
        grounded = None
        if (rationale_decoding or self.rationale_decoding) == "grounded":
            grounded = grounded_answers(ScriptedReasons(), sources, sources, tasks, position="after", max_new_tokens=9,
                                        reason_max_new_tokens=9, outputs=outs)
            outs = [g.output for g in grounded]
        return explain_outputs(tasks, sources, outs, "after", None, grounded)


@pytest.fixture
def client():
    return TestClient(create_app(ScriptedAssistant(), max_chars=100, max_request_bytes=1000))


def test_page_and_answer(client):
    assert 'id="text"' in client.get("/").text
    assert client.get("/api/tasks").json() == {"tasks": ["gec", "fluency"], "max_chars": 100,
                                               "rationale_decoding": "free"}
    a = client.post("/api/predict", json={"text": TEXT, "task": "gec"}).json()
    assert a["suggestion"] == "She went to school yesterday." and a["edits"][0]["explained_by"] == [0]


def test_each_edit_has_its_own_rationale_in_either_mode(client):
    free = client.post("/api/predict", json={"text": TWO, "task": "gec"}).json()
    go = 'The word "go" should be replaced by "went" because of the tense.'
    assert [e["rationale"] for e in free["edits"]] == [go, None]
    grounded = client.post("/api/predict", json={"text": TWO, "task": "gec", "rationale_decoding": "grounded"}).json()
    assert grounded["suggestion"] == free["suggestion"] and grounded["rationale_decoding"] == "grounded"
    assert [e["rationale"] for e in grounded["edits"]] == [
        'The word "go" should be replaced by "went" because it is the reason for go.',
        'The word "like" should be replaced by "likes" because it is the reason for like.']
    assert grounded["faithfulness"] == {"coverage": 1.0, "precision": 1.0}


@pytest.mark.parametrize("body,status,message", [
    ({"text": "x" * 101, "task": "gec"}, 422, "text: 101 characters, over the limit of 100"),
    ({"text": "", "task": "gec"}, 422, "text: empty"),
    ({"text": "   ", "task": "gec"}, 422, "text: empty"),
    ({"text": "Hi.", "task": "poetry"}, 422, "task 'poetry': not one of the loaded tasks"),
    ({"task": "gec"}, 422, "text: Field required"),
    ({"text": "y" * 990, "task": "gec"}, 413, "request body over 1000 bytes"),
    ({"text": "Hi.", "task": "gec", "rationale_decoding": "best"}, 422,
     "rationale_decoding: 'best' is not one of free, grounded"),
])
def test_bad_requests_get_one_clear_error(client, body, status, message):
    r = client.post("/api/predict", json=body)
    assert r.status_code == status and r.json()["error"].startswith(message), r.json()


def test_not_json_is_an_error(client):
    r = client.post("/api/predict", content=b"text=hi", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["error"]


def test_serve_loads_the_model_once_and_binds_locally(tmp_path, monkeypatch):
    from rationalign import engines
    from rationalign.components import import_components
    from rationalign.runner import compose
    from rationalign.stages.base import Context
    from rationalign.stages.serve import build_app

    calls = []
    real = engines.build_engine
    monkeypatch.setattr(engines, "build_engine", lambda *a, **k: calls.append(1) or real(*a, **k))
    import_components()
    cfg = compose(["stage=serve", "model=tiny", "task=all", "predict.max_new_tokens=8", f"paths.root={tmp_path}"])
    assert cfg.serve.host == "127.0.0.1"
    app, assistant = build_app(Context(cfg=cfg, workdir=tmp_path))
    c = TestClient(app)
    assert len(c.get("/api/tasks").json()["tasks"]) == 8
    for text in ("She go home.", "He like it."):
        a = c.post("/api/predict", json={"text": text, "task": "gec"}).json()
        assert a["source"] == text and "edits" in a and "rationale" in a
    assert len(calls) == 1  # one engine (one model load) for every request
    assistant.close()


# ---------------------------------------------------------------------------------- the browser
def _chromium() -> tuple[str, str] | None:
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server():
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ScriptedAssistant()), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def test_page_in_headless_chromium_highlights_the_edit(live_server, tmp_path):
    found = _chromium()
    if found is None:
        pytest.skip("no chromium + chromedriver on PATH (Debian: apt-get install -y chromium chromium-driver)")
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,600"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=found[1]), options=opts)
    try:
        driver.get(live_server)
        wait = WebDriverWait(driver, 20)
        wait.until(lambda d: len(Select(d.find_element(By.ID, "task")).options) == 2)
        Select(driver.find_element(By.ID, "task")).select_by_value("gec")
        driver.find_element(By.ID, "text").send_keys(TEXT)
        driver.find_element(By.ID, "submit").click()
        ins = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#diff ins.edit")))
        assert ins.text == "went" and driver.find_element(By.CSS_SELECTOR, "#diff del.edit").text == "go"
        note = driver.find_element(By.CSS_SELECTOR, 'li.explanation[data-edit="1"]').text
        assert note.startswith("go → went (R:VERB") and 'The word "go" should be replaced by "went"' in note
        assert driver.find_element(By.ID, "faithfulness").text.startswith(
            "Rationale free. Edit coverage 100%, rationale precision 100%")
        shot = Path(os.environ.get("RATIONALIGN_SCREENSHOT", tmp_path / "serve.png"))
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 1000
        # two edits: free decoding explains one; the grounded toggle gives each edit its own reason
        assert Select(driver.find_element(By.ID, "mode")).first_selected_option.get_attribute("value") == "free"
        driver.find_element(By.ID, "text").clear()
        driver.find_element(By.ID, "text").send_keys(TWO)
        driver.find_element(By.ID, "submit").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "li.explanation")) == 2)
        assert "no explanation names this edit" in driver.find_element(By.CSS_SELECTOR, 'li[data-edit="2"]').text
        Select(driver.find_element(By.ID, "mode")).select_by_value("grounded")
        driver.find_element(By.ID, "submit").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "faithfulness"), "Rationale grounded"))
        notes = [driver.find_element(By.CSS_SELECTOR, f'li.explanation[data-edit="{n}"]').text for n in (1, 2)]
        assert notes[0].startswith("go → went") and notes[0].endswith('"went" because it is the reason for go.')
        assert notes[1].startswith("like → likes") and notes[1].endswith('"likes" because it is the reason for like.')
        assert driver.find_element(By.ID, "faithfulness").text.startswith(
            "Rationale grounded. Edit coverage 100%, rationale precision 100%")
        driver.save_screenshot(str(shot.with_name(shot.stem + "-grounded.png")))
        # a refused request shows its error on the page
        driver.find_element(By.ID, "text").clear()
        driver.find_element(By.ID, "text").send_keys("   ")
        driver.find_element(By.ID, "submit").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "error"), "text: empty"))
    finally:
        driver.quit()
