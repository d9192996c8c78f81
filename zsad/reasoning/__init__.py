"""The reasoning layer: anomalies defined in words, LLM rule induction, verdicts and explanations.

One module per concern:

- ``llm``: one small LLM interface (OpenAI-compatible servers, local transformers, offline) with validation,
  retries, caching and a concurrency limit;
- ``definition``: a user's sentence -> ``Definition`` -> prompt sets for the text head and a LAFT concept subspace
  that attends to defect concepts / ignores normal variations in CLIP-space features;
- ``rules``: AnomalyRuler-style rules of normality and anomaly induced from a few normal images;
- ``explainers``: rule- and LLM-based explainers through ``zsad.explain``'s seam;
- ``options``: the CLI options and the object the Detector takes its hooks from.

Nothing here touches the network at import time; without an LLM every step has a rule-based fallback.
"""
from zsad.reasoning.llm import LLM, LLM_BACKENDS, LLMConfig, ReasoningError, make_llm, quote_data

__all__ = ["LLM", "LLM_BACKENDS", "LLMConfig", "ReasoningError", "make_llm", "quote_data"]
