"""From the reasoning settings (``ReasoningConfig``) to the objects the Detector takes its hooks from.

``reasoning_setup(config, explainer)`` builds the LLM client and checks it once (``LLM.check``: key variable set,
server reachable, model listed, local model loadable) before anything else: a failure is one ``ZsadError`` with
its fix (``zsad detect`` exits 2), or, with ``--llm-optional``, one warning and an offline run. It then parses the
definition (with the LLM when one is configured) and loads the rules; the Detector takes from the returned
``ReasoningSetup``:

- ``text_head(backbone, base)``: the text head (definition and/or rules prompts) or None for the default;
- ``feature_transform(backbone, object_name)``: a ``Features -> Features`` callable for the reference and mutual
  scorers' input (reference images and test images alike), or None (no definition, or no text space);
- ``explainer(backbone, object_name)``: the explainer chosen by ``explain`` (``zsad.explain.EXPLAINERS``);
- ``apply_verdict(result)``: with ``--verdict llm`` the LLM's verdict replaces the numeric one (both recorded);
- ``describe()``: for results.json (definition as parsed, rules summary, LLM settings without the key).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsad.errors import ZsadError
from zsad.explain.base import EXPLAINERS, ExplainerContext
from zsad.reasoning.config import ReasoningConfig
from zsad.reasoning.definition import (
    Definition, DefinitionHead, definition_notes, definition_prompt_set, definition_transform, parse_definition,
)
from zsad.reasoning.llm import LLM, LLMConfig, OfflineLLM, make_llm
from zsad.reasoning.rules import Rules, RulesHead
from zsad.scoring.prompts import PromptSet, load_prompt_set
from zsad.scoring.text_heads import PromptSetHead, is_family_spec


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
        if not backbone.has_text or (self.definition is None and self.rules is None):
            return None
        base = load_prompt_set(base) if isinstance(base, str) else base
        if self.definition is not None:
            base = definition_prompt_set(self.definition, base)
        if self.rules is not None:
            base = self.rules.prompt_set(base)
        if self.definition is not None:
            return DefinitionHead(backbone, self.definition, prompt_set=base)
        return RulesHead(backbone, self.rules, prompt_set=base)

    def hooks(self, backbone, prompts: str, object_name: str = "object", text_head=None):
        """(text head, feature transform) for the Detector. Definitions and rules extend a prompt set; a head family
        (``learned:``, ``rules:``) has none, so they extend WinCLIP's set instead. A given ``text_head`` wins."""
        base = "winclip" if is_family_spec(prompts) else prompts
        return text_head or self.text_head(backbone, base), self.feature_transform(backbone, object_name)

    def feature_transform(self, backbone, object_name: str = "object"):
        if self.definition is None:
            return None
        self.notes = definition_notes(backbone, self.definition)
        return definition_transform(backbone, self.definition, object_name=object_name, attend=self.attend,
                                    attend_gain=self.attend_gain)

    def explainer(self, backbone, object_name: str = "object"):
        """The explainer named by ``explain`` (``zsad.explain.EXPLAINERS``), with this setup's rules, definition
        and LLM."""
        return EXPLAINERS.get(self.explain)(ExplainerContext(
            backbone=backbone, object_name=object_name, rules=self.rules, definition=self.definition, llm=self.llm,
            send_images=self.send_images, verdict=self.verdict))

    def apply_verdict(self, result) -> None:
        """With ``verdict="llm"`` and a valid LLM answer, the LLM's verdict becomes the result's; the numeric one
        stays in ``result.reasoning["numeric_verdict"]`` and ``final_verdict`` says which one counts."""
        reasoning = result.reasoning
        if reasoning is None:
            return
        reasoning["verdict_setting"] = self.verdict
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


def reasoning_setup(config: ReasoningConfig, explain: str = "auto") -> ReasoningSetup:
    """The setup from the reasoning settings; parses the definition (with the LLM when one is configured).

    explain: the explainer setting ("auto": llm with an LLM, rules with rules or a definition, else factual).
    """
    backend = config.llm_backend or ("openai" if config.llm_base_url else "offline")
    text = config.define
    if config.define_file:
        path = Path(config.define_file)
        if not path.is_file():
            raise ZsadError(f"definition file {path} not found")
        text = ((text + "\n") if text else "") + path.read_text()
    attend, gain = _attend(config.define_attend)
    rules = Rules.load(config.rules) if config.rules else None
    if explain == "auto":
        explain = "llm" if backend != "offline" else "rules" if (rules or text) else "factual"
    if explain == "llm" and backend == "offline":
        raise ZsadError("--explain llm needs an LLM: give --llm-base-url and --llm-model (or --llm-backend)")
    if config.verdict == "llm" and explain != "llm":
        raise ZsadError("--verdict llm needs the LLM explainer (an LLM configured)")
    llm = None
    if backend != "offline":  # checked once, after the cheap checks and before any image is scored
        llm = checked(make_llm(LLMConfig(
            backend=backend, model=config.llm_model, base_url=config.llm_base_url, api_key_env=config.llm_api_key_env,
            supports_images=config.llm_images, timeout=config.llm_timeout, concurrency=config.llm_concurrency,
            max_failures=config.llm_max_failures)), optional=config.llm_optional)
    definition = parse_definition(text, llm) if text else None
    return ReasoningSetup(llm=llm, definition=definition, rules=rules, explain=explain, verdict=config.verdict,
                          attend=attend, attend_gain=gain, send_images=config.llm_images)


def checked(llm: LLM, optional: bool = False) -> LLM:
    """``llm`` once its configuration passed ``LLM.check``. On failure: a ``ZsadError`` with the fix, or with
    ``optional`` a warning and an offline stand-in that records why (every step then uses its rule-based
    fallback, and the numeric verdict stays final)."""
    try:
        llm.check()
    except ZsadError as error:
        if not optional:
            raise ZsadError(f"LLM check failed: {error}; or pass --llm-optional to run without the LLM") from None
        warnings.warn(f"LLM unavailable ({error}); running offline (--llm-optional): the definition is read by the "
                      "rule-based parser, explanations come from rules, verdicts stay numeric", UserWarning,
                      stacklevel=2)
        return OfflineLLM(llm.config, reason=str(error))
    return llm
