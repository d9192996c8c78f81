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
from zsad.reasoning.definition import (
    ConceptTransform, Definition, DefinitionHead, definition_transform, parse_definition,
)
from zsad.reasoning.explainers import LLMExplainer, RegionPhraser, RuleExplainer
from zsad.reasoning.llm import LLM, LLM_BACKENDS, LLMConfig, ReasoningError, make_llm, quote_data
from zsad.reasoning.options import ReasoningSetup, add_reasoning_options, reasoning_from_args
from zsad.reasoning.rules import Rules, RulesHead, describe_with_clip, describe_with_vlm, induce_rules

__all__ = [
    "ConceptTransform", "Definition", "DefinitionHead", "LLM", "LLMConfig", "LLMExplainer", "LLM_BACKENDS",
    "ReasoningError", "ReasoningSetup", "RegionPhraser", "RuleExplainer", "Rules", "RulesHead",
    "add_reasoning_options", "definition_transform", "describe_with_clip", "describe_with_vlm", "induce_rules",
    "make_llm", "parse_definition", "quote_data", "reasoning_from_args",
]
