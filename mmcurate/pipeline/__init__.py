"""``mmcurate run``: YAML recipes that drive every stage, with skip-if-up-to-date."""

from mmcurate.pipeline.recipe import STAGES, Recipe, apply_overrides, load_recipe
from mmcurate.pipeline.runner import PipelineResult, run_pipeline

__all__ = ["STAGES", "PipelineResult", "Recipe", "apply_overrides", "load_recipe", "run_pipeline"]
