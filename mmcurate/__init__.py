"""mmcurate: build modality-balanced audio-visual datasets and re-evaluate imbalance algorithms.

Stages (one subpackage each) talk only through files in a work directory, keyed by a stable
``sample_id``: ``ingest`` -> ``score`` -> ``balance`` (+ ``export``/``push``) -> ``reeval``.
"""

__version__ = "0.1.0"
