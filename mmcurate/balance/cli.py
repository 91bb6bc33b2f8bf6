"""``mmcurate balance``: uniform discrepancy over bins, splits, export."""

from __future__ import annotations

from pathlib import Path

import click

from mmcurate.balance.bins import parse_edges
from mmcurate.balance.config import BalanceConfig
from mmcurate.balance.runner import run_balance
from mmcurate.balance.sampling import SHORTFALL_CHOICES
from mmcurate.common.cli_options import workdir_option
from mmcurate.common.console import info
from mmcurate.common.workdir import stage_dir
from mmcurate.score import scores_state
from mmcurate.score.api import config_from_options, score_from_cli, score_options


@click.command("balance", context_settings={"show_default": True})
@click.argument("ingest_dir", required=False, type=click.Path(path_type=Path))
@workdir_option
@click.option("--out", type=click.Path(path_type=Path), default=None, show_default=False,
              help="Output folder for the balanced dataset (default: WORKDIR/balanced).")
@click.option("--bins", type=int, default=10, help="Equal-width discrepancy bins over [-1, 1].")
@click.option("--edges", default=None, help="Custom bin edges, comma-separated and increasing (e.g. -1,-0.5,0,0.5,1); overrides --bins.")
@click.option("--per-bin", type=int, default=None, help="Samples per bin (default: the largest count every bin can meet).")
@click.option("--size", type=int, default=None, help="Total samples; per bin = size // bins.")
@click.option("--shortfall", type=click.Choice(SHORTFALL_CHOICES), default="ask",
              help="When a bin cannot meet --per-bin/--size: ask (stop and explain), shrink (all bins to the "
                   "smallest pool: exactly uniform) or best-effort (keep the target where possible, report the shortfall).")
@click.option("--stratify", type=click.Choice(["label", "none"]), default="label",
              help="Within a bin, spread samples across classes as evenly as the pool allows (label) or draw uniformly (none).")
@click.option("--split", default="80/10/10", help="train/val/test shares, stratified by bin and class.")
@click.option("--ignore-groups", is_flag=True, default=False,
              help="Split samples freely even when the manifest has a group column (by default no group spans two splits).")
@click.option("--max-discrepancy-std", type=float, default=None,
              help="Leave out samples whose discrepancy_std (from mmcurate score) exceeds this: their bin is uncertain. Off by default.")
@click.option("--seed", type=int, default=0, help="Seed for sampling and splits (and for scoring if it runs).")
@click.option("--dry-run", is_flag=True, default=False, help="Print the plan (per-bin pool, target, shortfall, split sizes) without writing.")
@click.option("--max-shard-size", default="500MB", help="Largest Parquet shard of the export (e.g. 500MB).")
@click.option("--no-features", is_flag=True, default=False, help="Leave cached audio features out of the export.")
@click.option("--pretty-name", default=None, help="Dataset name shown on the card.")
@click.option("--license", "license_", default=None, help="Licence of the source data, for the card (default: the one given at ingest).")
@click.option("--source-dataset", default=None, help="Source dataset name, for the card (default: the one given at ingest).")
@click.option("--rescore", is_flag=True, default=False, help="Score again even if fresh scores exist.")
@score_options
def balance(ingest_dir: Path | None, workdir: str | None, out: Path | None, bins: int, edges: str | None,
            per_bin: int | None, size: int | None, shortfall: str, stratify: str, split: str, ignore_groups: bool,
            max_discrepancy_std: float | None, seed: int, dry_run: bool, max_shard_size: str, no_features: bool, pretty_name: str | None,
            license_: str | None, source_dataset: str | None, rescore: bool, **score_opts: object) -> None:
    """Build a dataset whose modality discrepancy is uniform over bins, with splits, and export it.

    Uses INGEST_DIR (default WORKDIR/ingest) and its scores, scoring first when they are missing
    or stale (the scorer options below apply then). Writes selection.parquet, a report/ folder,
    Hub-layout Parquet shards under data/, hf/ (save_to_disk) and README.md (dataset card).
    """
    target = ingest_dir or stage_dir("ingest", workdir)
    from mmcurate.ingest import require_ingest

    require_ingest(target)
    # Scorer options given on this command line must match the existing scores; options left at
    # their defaults do not force a rescore of scores made with other settings.
    ctx = click.get_current_context()
    explicit = {
        k: v for k, v in score_opts.items()
        if ctx.get_parameter_source(k) in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    }
    wanted = config_from_options({**score_opts, "seed": seed}) if explicit else None
    state = "stale: --rescore" if rescore else scores_state(target, wanted)
    if state != "fresh":
        info(f"balance: scores are {state}; running `mmcurate score` first")
        score_from_cli(target, {**score_opts, "seed": seed}, overwrite=rescore)
    cfg = BalanceConfig(
        bins=bins, edges=tuple(parse_edges(edges)) if edges else None, per_bin=per_bin, size=size, shortfall=shortfall,
        stratify=stratify, split=split, ignore_groups=ignore_groups, seed=seed, max_discrepancy_std=max_discrepancy_std,
        max_shard_size=max_shard_size,
        include_features=not no_features, pretty_name=pretty_name,
        extra={k: v for k, v in (("license", license_), ("name", source_dataset)) if v},
    )
    out_dir = out or stage_dir("balance", workdir)
    run_balance(target, out_dir, cfg, dry_run=dry_run)
    if not dry_run:
        info(f"balanced dataset: {out_dir} (report: {out_dir / 'report' / 'report.md'})")
        click.echo(str(out_dir))
