"""What a user gets per image: ``AnomalyResult`` and ``EvidenceScore``.

Defined once in the torch-free runtime (``zsad_runtime.results``), so ``zsad detect`` and ``zsad-runtime detect``
return the same class; these names stay importable from here.
"""
from zsad_runtime.results import AnomalyResult, EvidenceScore, flat_record, unsmoothed

__all__ = ["AnomalyResult", "EvidenceScore", "flat_record", "unsmoothed"]
