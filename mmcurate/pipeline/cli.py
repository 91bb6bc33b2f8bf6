"""``mmcurate run RECIPE.yaml``: the whole pipeline from one recipe."""

from __future__ import annotations

from pathlib import Path

import click

from mmcurate.cli_options import workdir_option
from mmcurate.pipeline.recipe import STAGES, apply_overrides, load_recipe
from mmcurate.pipeline.runner import print_result, run_pipeline
from mmcurate.pipeline.trust import refuse_folder_overwrite
from mmcurate.store import resolve_workdir


@click.command("run", context_settings={"show_default": True})
@click.argument("recipe", type=click.Path(path_type=Path))
@workdir_option
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Override a recipe setting (repeatable), e.g. --set score.epochs=3; the command line wins.",
)
@click.option("--only", multiple=True, type=click.Choice(STAGES), help="Run only this stage (repeatable).")
@click.option("--from", "from_stage", type=click.Choice(STAGES), default=None, help="Start at this stage.")
@click.option("--until", type=click.Choice(STAGES), default=None, help="Stop after this stage.")
@click.option("--force", is_flag=True, default=False, help="Rerun the selected stages even when up to date.")
@click.option("--dry-run", is_flag=True, default=False, help="Print the commands each stage would run; run nothing.")
def run(
    recipe: Path,
    workdir: str | None,
    overrides: tuple[str, ...],
    only: tuple[str, ...],
    from_stage: str | None,
    until: str | None,
    force: bool,
    dry_run: bool,
) -> None:
    """Run RECIPE: ingest -> score -> balance/export (-> push) (-> reeval) (-> formats) (-> browse).

    Sections of the recipe are the commands; their keys are the commands' options (dashes as
    underscores); `export` holds the balanced dataset's card options and `formats` those of
    `mmcurate export`. A stage is skipped when its outputs are complete and its settings (and those
    of the stages before it) are unchanged; a changed setting reruns that stage and the ones
    after it. The resolved recipe is saved as WORKDIR/recipe.resolved.yaml.
    """
    from_file = load_recipe(recipe)
    refuse_folder_overwrite(from_file.data, str(recipe))  # only the command line may say --overwrite
    loaded = apply_overrides(from_file, list(overrides))
    result = run_pipeline(loaded, resolve_workdir(workdir), only, from_stage, until, force, dry_run)
    print_result(result)
