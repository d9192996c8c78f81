"""Learning: AnomalyCLIP's object-agnostic prompts (``prompt_learner``), LoRA adapters (``lora``), training
(``train``), adapter artifacts (``adapters``), official checkpoint import (``official``) and the ``learned``
text-head family (``head``; declared in ``zsad.scoring.registry.TEXT_HEADS`` as ``--prompts learned:NAME``).

Importing this package loads no torch: each name below loads its module on first use (``zsad train --help``).
"""
from zsad.registry import lazy_exports

__all__ = lazy_exports(__name__, {
    "head": ('LearnedPromptHead', 'load_learned_head'),
    "prompt_learner": ('AnomalyCLIPPromptLearner', 'PromptLearnerConfig'),
})
