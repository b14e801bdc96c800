"""QUARK-style multi-reward training of the writing assistant (MaRio, arXiv 2311.02805).

rewards   pluggable reward registry (rm, task_metric, consistency, diversity, length)
quantize  quantile bins over a growing data pool
control   control tokens: tokenizer/embedding surgery, prompt prefixes, loading a trained policy
trainer   cross-entropy on the pool + KL to the reference policy - entropy bonus
"""
