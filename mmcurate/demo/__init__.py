"""The ``mmcurate demo`` building blocks: a synthetic audio-visual set that needs no download."""

from mmcurate.demo.synth import DEFAULT_CLASSES, DEMO_CLASSES, DemoClass, generate_demo_dataset

__all__ = ["DEFAULT_CLASSES", "DEMO_CLASSES", "DemoClass", "generate_demo_dataset"]
