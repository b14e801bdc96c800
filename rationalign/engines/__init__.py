"""Generation engines behind one interface (engines.base.Engine), built by one factory.

    with build_engine(cfg, adapter=adapter_dir) as engine:
        outs = engine.sample(user_messages, n=4, temperature=1.2, top_p=0.9, max_new_tokens=96, seed=7)

`prompts` are user messages; every engine turns them into the token ids training uses
(training.chat.prompt_ids) and generates from those ids. Every stage that generates (kfold, sample,
evaluate, quark, the `local` rationale and pair-rationale sources) goes through `build_engine`.
"""

from rationalign.engines.factory import build_engine

__all__ = ["build_engine"]
