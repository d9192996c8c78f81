"""CLI options of the reasoning layer and the object the Detector takes its hooks from.

The CLI calls ``add_reasoning_options(parser)`` and ``reasoning_from_args(args)``; the Detector takes from the
returned ``ReasoningSetup``:

- ``text_head(backbone, base)``: the text head (definition and/or rules prompts) or None for the default;
- ``feature_transform(backbone, object_name)``: a ``Features -> Features`` callable for the reference and mutual
  scorers' input (reference images and test images alike), or None (no definition, or no text space);
- ``explainer(backbone, object_name)``: the explainer (``RuleExplainer``/``LLMExplainer``), or None for factual;
  its ``observe(name, features, index)`` is called once per image after the forward pass;
- ``apply_verdict(result)``: with ``--verdict llm`` the LLM's verdict replaces the numeric one (both recorded);
- ``describe()``: for results.json (definition as parsed, rules summary, LLM settings without the key).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsad.errors import ZsadError
from zsad.reasoning.definition import (
    Definition, DefinitionHead, definition_notes, definition_prompt_set, definition_transform, parse_definition,
)
from zsad.reasoning.llm import LLM, LLM_BACKENDS, LLMConfig, make_llm
from zsad.reasoning.rules import Rules, RulesHead, rules_from_definition
from zsad.scoring.prompts import PromptSet, load_prompt_set
from zsad.scoring.text_heads import PromptSetHead

VERDICTS = ("numeric", "llm")


def add_reasoning_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("reasoning (definitions in words, rules, LLM explanations)")
    group.add_argument("--define", default=None,
                       help='what counts as a defect and what is normal, e.g. "cracks and stains are defects; '
                            'colour differences are normal"')
    group.add_argument("--define-file", default=None, help="read the definition from this text file")
    group.add_argument("--define-attend", default="gain:4",
                       help="how defects are attended to in CLIP features: 'project' (LAFT: keep only the defect "
                            "subspace), 'gain:G' (scale it by G, keep the rest; default gain:4) or 'off'")
    group.add_argument("--rules", default=None, help="rules file (YAML) for the text head and the explanations")
    group.add_argument("--llm-backend", default=None, choices=sorted(LLM_BACKENDS),
                       help="LLM backend (default: openai when --llm-base-url is given, else offline)")
    group.add_argument("--llm-base-url", default=None, help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    group.add_argument("--llm-model", default=None, help="model name on the server, or local model id/path")
    group.add_argument("--llm-api-key-env", default=None,
                       help="name of the environment variable holding the API key (the key is never written)")
    group.add_argument("--llm-images", action="store_true", help="the model accepts images: send them")
    group.add_argument("--llm-timeout", type=float, default=60.0, help="seconds per LLM request")
    group.add_argument("--llm-concurrency", type=int, default=4, help="LLM requests at a time")
    group.add_argument("--explain", default=None, choices=["factual", "rules", "llm"],
                       help="explainer (default: llm with an LLM, rules with --rules/--define, else factual)")
    group.add_argument("--verdict", default="numeric", choices=VERDICTS,
                       help="whose verdict is final: the numeric threshold (default) or the LLM's; both are recorded")


def _attend(value: str) -> tuple[bool, float | None]:
    if value == "off":
        return False, None
    if value == "project":
        return True, None
    if value.startswith("gain:"):
        try:
            gain = float(value[5:])
        except ValueError:
            gain = 0.0
        if gain > 0:
            return True, gain
    raise ZsadError(f"--define-attend must be 'project', 'gain:G' with G > 0, or 'off'; got {value!r}")


@dataclass
class ReasoningSetup:
    llm: LLM | None = None
    definition: Definition | None = None
    rules: Rules | None = None
    explain: str = "factual"
    verdict: str = "numeric"
    attend: bool = True
    attend_gain: float | None = 4.0
    send_images: bool = False
    notes: list[str] = field(default_factory=list)

    def text_head(self, backbone, base: PromptSet | str = "winclip") -> PromptSetHead | None:
        if not getattr(backbone, "has_text", False) or (self.definition is None and self.rules is None):
            return None
        base = load_prompt_set(base) if isinstance(base, str) else base
        if self.definition is not None:
            base = definition_prompt_set(self.definition, base)
        if self.rules is not None:
            base = self.rules.prompt_set(base)
        if self.definition is not None:
            return DefinitionHead(backbone, self.definition, prompt_set=base)
        return RulesHead(backbone, self.rules, prompt_set=base)

    def feature_transform(self, backbone, object_name: str = "object"):
        if self.definition is None:
            return None
        self.notes = definition_notes(backbone, self.definition)
        return definition_transform(backbone, self.definition, object_name=object_name, attend=self.attend,
                                    attend_gain=self.attend_gain)

    def explainer(self, backbone, object_name: str = "object"):
        if self.explain == "factual":
            return None
        from zsad.reasoning.explainers import LLMExplainer, RegionPhraser, RuleExplainer
        from zsad.reasoning.vocabulary import load_vocabulary

        phrases = list(self.definition.defects) if self.definition else []
        phrases += [p for p in load_vocabulary()["defects"] if p not in phrases]
        phraser = RegionPhraser(backbone, phrases, object_name) if getattr(backbone, "has_text", False) else None
        rules = self.rules
        if rules is None and self.definition is not None:
            rules = rules_from_definition(self.definition, object_name)
        if self.explain == "llm" and self.llm is not None and self.llm.available:
            return LLMExplainer(self.llm, rules, phraser, send_images=self.send_images)
        return RuleExplainer(rules, phraser)

    def apply_verdict(self, result) -> None:
        """With ``verdict="llm"`` and a valid LLM answer, the LLM's verdict becomes the result's; the numeric one
        stays in ``result.reasoning["numeric_verdict"]`` and ``final_verdict`` says which one counts."""
        reasoning = result.reasoning
        if reasoning is None:
            return
        if self.verdict == "llm" and reasoning.get("source") == "llm" and reasoning.get("verdict") in (
                "anomalous", "normal"):
            result.is_anomalous = reasoning["verdict"] == "anomalous"
            reasoning["final_verdict"] = "llm"
        else:
            reasoning["final_verdict"] = "numeric"

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"explain": self.explain, "verdict": self.verdict}
        if self.definition is not None:
            out["definition"] = self.definition.describe()
            out["definition_attend"] = ("off" if not self.attend else "project" if self.attend_gain is None
                                        else f"gain:{self.attend_gain:g}")
        if self.rules is not None:
            out["rules"] = {"source": self.rules.source, "normal": [r.rule for r in self.rules.normal],
                            "anomaly": [r.rule for r in self.rules.anomaly]}
        if self.llm is not None:
            out["llm"] = self.llm.describe()
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def reasoning_from_args(args: argparse.Namespace) -> ReasoningSetup:
    """The setup from parsed options; parses the definition (with the LLM when one is configured)."""
    backend = args.llm_backend or ("openai" if args.llm_base_url else "offline")
    llm = None
    if backend != "offline":
        llm = make_llm(LLMConfig(backend=backend, model=args.llm_model, base_url=args.llm_base_url,
                                 api_key_env=args.llm_api_key_env, supports_images=args.llm_images,
                                 timeout=args.llm_timeout, concurrency=args.llm_concurrency))
    text = args.define
    if args.define_file:
        path = Path(args.define_file)
        if not path.is_file():
            raise ZsadError(f"definition file {path} not found")
        text = ((text + "\n") if text else "") + path.read_text()
    definition = parse_definition(text, llm) if text else None
    rules = Rules.load(args.rules) if args.rules else None
    explain = args.explain or ("llm" if llm is not None else "rules" if (rules or definition) else "factual")
    if explain == "llm" and llm is None:
        raise ZsadError("--explain llm needs an LLM: give --llm-base-url and --llm-model (or --llm-backend)")
    if args.verdict == "llm" and explain != "llm":
        raise ZsadError("--verdict llm needs the LLM explainer (an LLM configured)")
    attend, gain = _attend(args.define_attend)
    return ReasoningSetup(llm=llm, definition=definition, rules=rules, explain=explain, verdict=args.verdict,
                          attend=attend, attend_gain=gain, send_images=args.llm_images)
