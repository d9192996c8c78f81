"""The built-in scorers; importing this module registers them (one line per scorer)."""
import zsad.scoring.fewshot  # noqa: F401
import zsad.scoring.mutual.scorer  # noqa: F401
import zsad.scoring.text  # noqa: F401
import zsad.scoring.winclip  # noqa: F401
import zsad.scoring.anomalyclip  # noqa: F401
