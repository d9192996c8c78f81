"""Defect-type discovery: the anomalies of a run grouped into types, counted and named, without labels.

A training-free stage after detection, after AnomalyNCD (Huang et al., CVPR 2025, "Towards Novel Anomaly Class
Discovery in Industrial Scenarios"). What is taken from the paper's official code: main-element binarisation of
each anomaly map (``regions.main_element``), anomaly-centred crops (``regions.anomaly_crops``), region-to-image
label merging weighted by region area (``clustering.merge_regions``), and the metrics (``zsad.metrics.clustering``).
What is not: AnomalyNCD trains a mask-guided ViT with pseudo-labels and a labelled auxiliary defect set, and is told
the number of classes; zsad pools the run's frozen backbone features over each crop's anomalous patches
(``features``), clusters them with k-means, estimates the number of types itself (``clustering.estimate_k``), and
names types by CLIP text similarity or a namer hook (``naming``). So this is not AnomalyNCD, and its numbers are not
AnomalyNCD's.

Reads results (``zsad.results``), backbones, data and the reasoning layer's vocabulary and LLM client; never the
detector, the config or the CLI. ``discover`` is the entry point (``embed_regions`` + ``group``: regroup without
re-embedding); ``settings`` declares the user's settings once (``DiscoverySettings``: the flags of ``zsad
discover`` and the ``--discover-*`` flags of detect and eval come from it); ``configured.discover_configured`` runs
discovery as the settings say (the one road of every face and of ``Detector.discover``); ``naming_llm`` names
types with an LLM; ``writer`` writes a discovery folder and is the ``zsad.outputs`` writer of ``detect
--discover``; ``run_dir`` reads a ``zsad detect`` folder back; ``cli`` is the ``zsad discover RUN_DIR`` face (a
face may read the config's declarations for its model and LLM flags). Importing the package loads no torch.
"""
from zsad.registry import lazy_exports

__all__ = lazy_exports(__name__, {
    "clustering": ("DEFAULT_ESTIMATOR", "ESTIMATORS", "KEstimate", "estimate_k"),
    "configured": ("discover_configured",),
    "naming": ("Namer", "Naming", "TypeFacts"),
    "naming_llm": ("LLMNamer",),
    "pipeline": ("DefectType", "Discovery", "ImageType", "RegionSet", "RegionType", "discover", "embed_regions",
                 "group"),
    "settings": ("DiscoverySettings", "discovery_settings"),
    "writer": ("annotate_records", "discovery_writer", "write_discovery"),
})
