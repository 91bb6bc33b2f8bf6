"""Generators of labelled audio-visual sets with a known ground truth, for benchmarks and tests.

* :mod:`mmcurate.synth.avdigits`: AV-digits-style sets (spoken digit + MNIST image), re-drawn
  from the Free Spoken Digit Dataset and the MNIST test set with any seed, size, corruption
  rates and severities, written as real encoded clips with a ground-truth ``labels.csv``.
* :mod:`mmcurate.demo.synth` (the demo's generator): coloured shapes and sounds with a continuous
  per-clip clarity in each modality.

Import from the submodules (``from mmcurate.synth.avdigits import generate_avdigits``): the
package itself imports nothing, so ``python -m mmcurate.synth.avdigits`` runs cleanly.
"""
