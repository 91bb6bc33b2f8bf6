"""Re-evaluate multimodal imbalance algorithms per modality-discrepancy subset (``mmcurate reeval``).

Entry points: :func:`mmcurate.reeval.runner.run_reeval` (everything), :func:`mmcurate.reeval.trainer.train_run`
(one method, one seed), :mod:`mmcurate.reeval.methods` (the method registry), and
:func:`mmcurate.reeval.sources.load_source` (any supported dataset -> :class:`ReevalData`).
"""
