"""``mmcurate reeval``: compare unimodal, joint and imbalance-algorithm models per subset
(options from :class:`ReevalConfig`)."""

from __future__ import annotations

from typing import Any

import click

from mmcurate.cli_options import workdir_option
from mmcurate.common.options import click_options, from_cli
from mmcurate.reeval import STAGE
from mmcurate.reeval.config import ReevalConfig
from mmcurate.stages import run_stage
from mmcurate.store import Workdir


def _list_methods(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """--list-methods: the registry's methods with category and paper (from the classes themselves)."""
    if not value or ctx.resilient_parsing:
        return
    from mmcurate.reeval.methods import method_catalog

    rows = method_catalog()
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in ("name", "category", "reference")}
    click.echo("  ".join(k.ljust(widths[k]) for k in widths) + "  paper")
    for r in rows:
        click.echo("  ".join(r[k].ljust(widths[k]) for k in widths) + "  " + (r["paper"] or r["title"]))
    ctx.exit(0)


@click.command(
    "reeval",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100, "show_default": True},
    epilog=STAGE.epilog(
        "\b\nExamples:\n"
        "  mmcurate reeval                                   # the work dir's balanced set\n"
        "  mmcurate reeval ORG/NAME --out results/           # a dataset on the Hub\n"
        "  mmcurate reeval mmcurate-work/ingest --out biased/ # the original, biased data\n"
        "  mmcurate reeval --methods joint,ogm_ge --seeds 0,1,2 --method-param ogm_ge.alpha=0.8"
    ),
)
@workdir_option
@click.option(
    "--list-methods",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_list_methods,
    help="Print every method with its category and paper, then exit.",
)
@click_options(ReevalConfig)
def reeval(workdir: str | None, **options: Any) -> None:
    """Re-evaluate imbalance algorithms on a balanced dataset, per modality-discrepancy subset.

    SOURCE is a balanced dataset directory (default: WORKDIR/balanced), a Hugging Face Hub repo id
    ORG/NAME, or an ingest+score directory (WORKDIR/ingest, to re-evaluate on the original, biased
    data). Every method gets the same data, epochs, optimiser and seeds; the tested checkpoint is
    chosen on the validation split, never on test. Runs resume from their last checkpoint.
    """
    outcome = run_stage(STAGE, Workdir.resolve(workdir), from_cli(ReevalConfig, options))
    for kind, path in outcome.paths.items():
        click.echo(f"{kind}: {path}")
