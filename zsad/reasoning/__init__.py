"""The reasoning layer: anomalies defined in words, LLM rule induction, verdicts and explanations.

One module per concern:

- ``llm``: one small LLM interface (local transformers, offline; ``openai_llm``: OpenAI-compatible servers) with an
  up-front check, validation, retries, caching and a concurrency limit; ``breaker``: the circuit breaker that stops
  calling a failing LLM for the rest of a run;
- ``parsing``: a user's sentence -> ``Definition`` (rule parser, LLM parser cross-checked against it);
- ``definition``: ``Definition`` -> prompt sets for the text head and a LAFT concept subspace that attends to defect
  concepts / ignores normal variations in CLIP-space features;
- ``rules``: AnomalyRuler-style rules of normality and anomaly induced from a few normal images;
- ``explainers``: rule- and LLM-based explainers through ``zsad.explain``'s seam;
- ``config``: the settings (``ReasoningConfig``, a section of the detector's config) and the LLM backends;
- ``options``: from the settings to the object the Detector takes its hooks from;
- ``summary``: what the LLM did in a run, counted from the results (the CLI's summary line, the run's warning).

Nothing here touches the network at import time, and importing the package loads no torch (names load their
module on first use); without an LLM every step has a rule-based fallback.
"""
from zsad.registry import lazy_exports

__all__ = lazy_exports(__name__, {
    "definition": ('ConceptTransform', 'DefinitionHead', 'definition_transform'),
    "parsing": ('Definition', 'parse_definition', 'parse_rules'),
    "explainers": ('LLMExplainer', 'RegionPhraser', 'RuleExplainer'),
    "llm": ('LLM', 'LLMConfig', 'ReasoningError', 'make_llm', 'quote_data'),
    "config": ('LLM_BACKENDS', 'ReasoningConfig'),
    "options": ('ReasoningSetup', 'reasoning_setup'),
    "rules": ('Rules', 'RulesHead', 'describe_with_clip', 'describe_with_vlm', 'induce_rules'),
})
