"""LLM-judge evaluation: pairwise win rate with confidence intervals, 1-5 rubric scores and
rationale accuracy, through the OpenAI-compatible ChatClient (cache, retries, fault handling).

`asker` (batched questions with a cache, bounded concurrency and bounded re-asks on unparseable
answers) is shared with the teacher source of `rationalign.pair_rationale`."""

from rationalign.judge.asker import Answer, Asker, EndpointConfig, Question, fill
from rationalign.judge.stats import bootstrap_ci, wilson

__all__ = ["Answer", "Asker", "EndpointConfig", "Question", "bootstrap_ci", "fill", "wilson"]
