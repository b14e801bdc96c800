"""Generation engines behind one interface (engines.base.Engine), built by one factory.

    with build_engine(cfg, adapter=adapter_dir) as engine:
        outs = engine.sample(user_messages, n=4, temperature=1.2, top_p=0.9, max_new_tokens=96, seed=7)

`prompts` are user messages; every engine turns them into the token ids training uses
(training.chat.prompt_ids) and generates from those ids. Every stage that generates (kfold, sample,
evaluate, quark, the `local` rationale and pair-rationale sources) goes through `build_engine`.

Cache keys (docs/distributed.md): stages that *sample* (kfold, sample, quark) key on `engine.name` and
`engine.batch_size`, because the engines draw different random samples (and HF seeds per batch).
Greedy evaluation does not: the same prompt ids decoded greedily are meant to give the same text on
either engine, so `engine=vllm stage=evaluate` reuses predictions an hf run already made.
"""

from rationalign.engines.factory import build_engine

__all__ = ["build_engine"]
