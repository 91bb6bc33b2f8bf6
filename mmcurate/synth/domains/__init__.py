"""Other-domain audio-visual sets (coloured glyphs and cluttered scenes; melodies, sound events and
speech; corruption kinds av_digits lacks): see :mod:`mmcurate.synth.domains.generate`."""

from mmcurate.synth.domains.generate import DomainSpec, generate_domain_set

__all__ = ["DomainSpec", "generate_domain_set"]
