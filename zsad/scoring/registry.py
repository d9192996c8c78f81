"""The scorers and text-head families zsad knows, declared by module path (nothing is imported to list them).

Adding a built-in scorer: one module with a ``Scorer`` subclass (``zsad/scoring/text.py`` is the smallest example)
and one ``SCORERS.declare`` line here naming it, its typed config (``zsad.scoring.configs``) and its help. A scorer
defined elsewhere registers itself: ``@SCORERS.register("toy", config=ToyConfig, help="...")``. The CLI's
``--method`` choices and help, ``Detector(method=...)`` and preset validation all read this registry.
"""
from __future__ import annotations

from zsad.registry import Registry

SCORERS = Registry("method")
SCORERS.declare("winclip", "zsad.scoring.winclip:WinCLIPScorer", config="zsad.scoring.configs:WinCLIPConfig",
                help="WinCLIP (exact windows, harmonic scales); WinCLIP+ with references", order=5)
SCORERS.declare("text", "zsad.scoring.text:TextScorer", config="zsad.scoring.configs:TextConfig",
                help="zero-shot: patch tokens vs. normal/anomalous text prompts (CLIP backbones)", order=10)
SCORERS.declare("anomalyclip", "zsad.scoring.anomalyclip:AnomalyCLIPScorer",
                config="zsad.scoring.configs:AnomalyCLIPConfig",
                help="AnomalyCLIP's formula: V-V patch tokens vs (learned) prompts, layer maps summed, CLS "
                     "probability as score", order=15)
SCORERS.declare("fewshot", "zsad.scoring.fewshot:FewShotScorer", config="zsad.scoring.configs:FewShotConfig",
                help="few-shot: distance to the nearest patch of good reference images (--references)", order=20)
SCORERS.declare("mutual", "zsad.scoring.mutual.scorer:MutualScorer", config="zsad.scoring.mutual.config:MutualConfig",
                help="zero-shot, training-free (MuSc): each image against the other images of the batch", order=30)

AUTO_HELP = ("the strongest evidence the inputs allow, alone (references -> fewshot; learned prompts -> "
             "anomalyclip; a batch of 8 or more -> mutual; else text); with --fuse every one, fused")

# Text-head families, named by the prefix of a --prompts spec (``learned:NAME``). ``trained_options`` names the
# function giving the backbone settings a head was trained in, which the config applies above the preset.
TEXT_HEADS = Registry("text head family", hint="(or a prompt-set name or a YAML file)")
TEXT_HEADS.declare("learned", "zsad.learning.head:learned_text_head",
                   help="AnomalyCLIP prompts learned by `zsad train` (adapters/NAME) or an official checkpoint",
                   trained_options="zsad.learning.adapters:trained_options")
TEXT_HEADS.declare("rules", "zsad.reasoning.rules:rules_text_head", help="prompts from a rules file (YAML)")


def method_names() -> list[str]:
    """``auto`` followed by every registered scorer, in the registry's order."""
    return ["auto", *SCORERS.names()]


def method_help() -> str:
    return "; ".join([f"auto: {AUTO_HELP}", *(f"{name}: {SCORERS.help(name)}" for name in SCORERS.names())])
