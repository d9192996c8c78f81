"""Learning: AnomalyCLIP's object-agnostic prompts (``prompt_learner``), LoRA adapters (``lora``), training
(``train``), adapter artifacts (``adapters``), official checkpoint import (``official``) and AnomalyCLIP's
inference formula (``anomalyclip``).

Importing this package registers the ``learned`` text-head family (``--prompts learned:NAME``).
"""
from zsad.learning.head import LearnedPromptHead, load_learned_head
from zsad.learning.prompt_learner import AnomalyCLIPPromptLearner, PromptLearnerConfig

__all__ = ["AnomalyCLIPPromptLearner", "PromptLearnerConfig", "LearnedPromptHead", "load_learned_head"]
