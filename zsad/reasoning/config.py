"""The reasoning layer's settings (a definition in words, rules, an LLM, whose verdict counts) and the declared
LLM backends, torch-free, so that ``zsad detect --help`` lists them without loading a model library.

``ReasoningConfig`` is a section of ``DetectorConfig``: ``--define``, ``Detector(define=...)`` and a preset's
``reasoning:`` key are the same setting. ``zsad.reasoning.options.reasoning_setup`` turns it into the objects the
detector uses (the parsed definition, the rules, the LLM client).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from zsad.config_fields import positive_float, positive_int, setting
from zsad.errors import ZsadError
from zsad.registry import Registry

VERDICTS = ("numeric", "llm")

LLM_BACKENDS = Registry("LLM backend")
LLM_BACKENDS.declare("offline", "zsad.reasoning.llm:OfflineLLM", help="no LLM: rule-based fallbacks everywhere")
LLM_BACKENDS.declare("openai", "zsad.reasoning.openai_llm:OpenAIChatLLM",
                     help="an OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, LM Studio)")
LLM_BACKENDS.declare("transformers", "zsad.reasoning.llm:TransformersLLM",
                     help="a local transformers text-generation model")


@dataclass(frozen=True)
class ReasoningConfig:
    """Definitions in words, rules and LLM explanations (``zsad.reasoning``); all unset means none of it runs."""

    define: str | None = setting(None, metavar="TEXT", help='what counts as a defect and what is normal, e.g. '
                                 '"cracks and stains are defects; colour differences are normal"')
    define_file: str | None = setting(None, metavar="FILE", help="read the definition from this text file")
    define_attend: str = setting(
        "gain:4", metavar="MODE", help="how defects are attended to in CLIP features: 'project' (LAFT: keep only "
                                       "the defect subspace), 'gain:G' (scale it by G, keep the rest) or 'off'")
    rules: str | None = setting(None, metavar="FILE", help="rules file (YAML) for the text head and the explanations")
    llm_backend: str | None = setting(None, choices=LLM_BACKENDS.names, help=lambda: (
        "LLM backend (default: openai when --llm-base-url is given, else offline): "
        + "; ".join(f"{name}: {LLM_BACKENDS.help(name)}" for name in LLM_BACKENDS.names())))
    llm_base_url: str | None = setting(None, metavar="URL",
                                       help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    llm_model: str | None = setting(None, metavar="NAME", help="model name on the server, or local model id/path")
    llm_api_key_env: str | None = setting(None, metavar="VAR", help="name of the environment variable holding "
                                                                    "the API key (the key is never written)")
    llm_images: bool = setting(False, help="the model accepts images: send them")
    llm_timeout: float = setting(60.0, parse=positive_float, metavar="S", run_time_only=True,
                                 help="wall-clock seconds per LLM request (connecting, waiting and reading together)")
    llm_concurrency: int = setting(4, parse=positive_int, metavar="N", run_time_only=True,
                                   help="LLM requests in flight at a time")
    llm_max_failures: int = setting(3, parse=positive_int, metavar="N", run_time_only=True,
                                    help="stop calling the LLM for the rest of the run after N consecutive failed "
                                         "requests (at once after HTTP 401/403/404); rules explain the rest")
    llm_optional: bool = setting(False, run_time_only=True, help="when the up-front LLM check fails, warn and run offline (rule-based "
                                             "parsing and explanations, numeric verdicts) instead of stopping")
    verdict: str = setting("numeric", choices=VERDICTS,
                           help="whose verdict is final: the numeric threshold or the LLM's; both are recorded")

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ZsadError(f"verdict {self.verdict!r} must be one of {', '.join(VERDICTS)}")
        if self.llm_backend is not None:
            LLM_BACKENDS.canonical(self.llm_backend)
        if self.llm_timeout <= 0 or self.llm_concurrency < 1 or self.llm_max_failures < 1:
            raise ZsadError("llm_timeout must be positive, llm_concurrency and llm_max_failures at least 1")

    @property
    def active(self) -> bool:
        """Whether anything beyond the defaults is asked for (otherwise the detector builds no reasoning)."""
        return any(getattr(self, f.name) != f.default for f in fields(self))
