"""LLM-judge evaluation: pairwise win rate with confidence intervals, 1-5 rubric scores and
rationale accuracy, through the OpenAI-compatible ChatClient (cache, retries, fault handling).

The endpoint, its options (one EndpointConfig) and the Asker (batched questions with a cache,
bounded concurrency and bounded re-asks on unparseable answers) are `rationalign.llm`, shared with
the teacher sources of `rationalign.rationale`."""

from rationalign.judge.config import JUDGES, JudgeConfig, parse_judge_config
from rationalign.judge.stats import bootstrap_ci, wilson

__all__ = ["JUDGES", "JudgeConfig", "bootstrap_ci", "parse_judge_config", "wilson"]
