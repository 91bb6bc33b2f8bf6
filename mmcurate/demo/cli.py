"""``mmcurate demo``: the whole pipeline on a synthetic set built on the spot (no download)."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import click

from mmcurate.cli_options import workdir_option
from mmcurate.common.console import info, summary_table
from mmcurate.store import Workdir


def demo_recipe_path() -> Path:
    """The packaged demo recipe (``pipelines/demo.yaml`` in the repository is the same file)."""
    return Path(str(resources.files("mmcurate.demo").joinpath("demo.yaml")))


@click.command("demo", context_settings={"show_default": True})
@workdir_option
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Override a demo recipe setting, e.g. --set source.generate.n_per_class=30.",
)
@click.option("--force", is_flag=True, default=False, help="Rerun every stage even if up to date.")
def demo(workdir: str | None, overrides: tuple[str, ...], force: bool) -> None:
    """Generate a small labelled audio-visual set (shapes and sounds with per-clip noise in
    each modality), then run ingest -> score -> balance/export -> reeval on it, and print where
    the balanced dataset, the reports and the re-evaluation table are. A few minutes on 2 CPU cores.
    """
    from mmcurate.pipeline import apply_overrides, load_recipe, run_pipeline
    from mmcurate.pipeline.runner import print_result

    wd = Workdir.resolve(workdir)
    recipe = apply_overrides(load_recipe(demo_recipe_path()), list(overrides))
    started = time.monotonic()
    result = run_pipeline(recipe, wd.path, force=force)
    print_result(result)
    balanced, reeval, ingest = wd.balanced.path, wd.reeval_dir, wd.ingest.path
    table = reeval / "results.md"
    summary_table(
        f"demo finished in {time.monotonic() - started:.0f} s",
        ["what", "where"],
        [
            ["balanced dataset (Hub layout + card)", str(balanced)],
            ["  load it", f"datasets.load_from_disk('{balanced / 'hf'}')"],
            ["modality-bias report (before balancing)", str(ingest / "report" / "report.md")],
            ["balance report", str(balanced / "report" / "report.md")],
            ["re-evaluation table", str(table)],
        ],
    )
    if table.is_file():
        click.echo(table.read_text())
    info("next: `mmcurate push --repo-id ORG/NAME` publishes the balanced dataset")
