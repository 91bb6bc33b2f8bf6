"""``mmcurate demo``: the whole pipeline on a synthetic set generated on the spot (:mod:`mmcurate.synth`)."""
