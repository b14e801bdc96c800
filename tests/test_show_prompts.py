"""stage=show_prompts on model=tiny: the exact strings every model sees, no training, no artifacts."""

from __future__ import annotations

import pytest

from rationalign.runner import compose, run

try:
    from tests.test_paper_prompts import TABLE8_PREAMBLE, TABLE10, TABLE11, TABLE12, TEMPLATE_REQUEST
except ImportError:  # tests/ is not a package when pytest puts it on sys.path itself
    from test_paper_prompts import TABLE8_PREAMBLE, TABLE10, TABLE11, TABLE12, TEMPLATE_REQUEST

FIG3_HEAD = ("You are given a pair of English sentences along with a list of atomic edits. For each edit, the first "
             "word identifies content in the source sentence that is less appropriate, while the second word "
             "suggests a better phrase in the target sentence. ")
FIG3_TAIL = (" Please generate a succinct explanation for each edit using the following template:\n\n"
             "The word X should be deleted/inserted/replaced by Y because ...\n\n###Source sentence:\n")


@pytest.fixture
def no_weights(monkeypatch):
    """Any attempt to load model weights fails the test: the tokenizer is all the stage may load."""
    import rationalign.models as M

    def refuse(*a, **k):
        raise AssertionError("show_prompts loaded model weights")

    for name in ("load_base_model", "load_for_training", "load_trained", "build_tiny_llama"):
        monkeypatch.setattr(M, name, refuse)


def test_show_prompts_prints_the_paper_texts_for_every_task(tmp_path, capsys, no_weights):
    cfg = compose(["stage=show_prompts", "task=all", "model=tiny", f"paths.root={tmp_path}"])
    result = run(cfg)
    out = capsys.readouterr().out
    for task in TABLE12:
        r = next(rec for rec in _labeled(cfg) if rec.task == task)
        # Table 8 with the Table 12 prompt, exactly as the writing assistant reads it
        assert (TABLE8_PREAMBLE + "\n\n###Instruction:\n" + TABLE12[task] + TEMPLATE_REQUEST + "\n\n###Input:\n"
                + r.source + "\n\n###Response:\n") in out
        # Table 7 with the Table 11 instruction and the gold revision as hypothesis
        assert TABLE11[task] + "\n### Input:\n" + r.source + "\n### Hypothesis:\n" + r.target in out
        # Fig. 3 with the Table 10 instruction
        assert (FIG3_HEAD + TABLE10[task] + FIG3_TAIL + r.source + "\n\n###Target sentence:\n" + r.target
                + "\n\n###Edits:\n") in out
        # the SFT target: suggestion, then the template rationale in the paper's form
        assert r.target + "\nExplanation: The word " in out or r.source == r.target
    counts = result["counts"]
    assert len(counts) == 8 and all(set(c) == {"wa_prompt", "wa_target", "wa_prompt_no_rationale", "rm_input",
                                              "teacher_prompt"} for c in counts.values())
    assert all(v > 10 for c in counts.values() for v in c.values())
    # nothing trained, nothing written (run() without Hydra: not even a log dir)
    assert not (tmp_path / "default").exists()


def test_token_counts_are_those_of_the_configured_tokenizer(tmp_path, capsys):
    from rationalign.models import load_tokenizer

    cfg = compose(["stage=show_prompts", "task=gec", "model=tiny", f"paths.root={tmp_path}"])
    result = run(cfg)
    out = capsys.readouterr().out
    tok = load_tokenizer(cfg.model)
    (counts,) = result["counts"].values()
    prompt = out.split(f"[{counts['wa_prompt']} tokens] ----\n")[1].split("\n---- ")[0] + "\n"
    assert prompt.startswith(TABLE8_PREAMBLE) and len(tok(prompt, add_special_tokens=False)["input_ids"]) == \
        counts["wa_prompt"]


def test_chat_layout_shows_the_chat_template_and_rationale_none(tmp_path, capsys, no_weights):
    cfg = compose(["stage=show_prompts", "task=gec", "model=tiny", "prompts.layout=chat", "rationale=none",
                   f"paths.root={tmp_path}"])
    run(cfg)
    out = capsys.readouterr().out
    assert "<|im_start|>system\n" + TABLE8_PREAMBLE + "<|im_end|>\n<|im_start|>user\n###Instruction:\n" in out
    assert "<|im_start|>user\n" + TABLE11["gec"] + "\n### Input:\n" in out  # the RM through the chat template too
    assert "no rationale" in out


def test_show_prompts_cli_writes_no_stage_dir(tmp_path):
    """The real entrypoint: only Hydra's own log dir appears under the run dir."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "rationalign", "stage=show_prompts", "task=coherence", "model=tiny",
                           f"paths.root={tmp_path}"], check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert TABLE12["coherence"] in proc.stdout and TABLE10["coherence"] in proc.stdout
    assert sorted(p.name for p in (tmp_path / "default").iterdir()) == ["logs"]


def _labeled(cfg):
    from rationalign.data.splits import load_split

    return load_split(cfg, "labeled")
