"""``mmcurate reeval``: compare unimodal, joint and imbalance-algorithm models per subset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mmcurate.common.cli_options import workdir_option
from mmcurate.common.errors import MMCurateError
from mmcurate.common.workdir import stage_dir
from mmcurate.models.fusion import FUSIONS
from mmcurate.reeval.config import OPTIMIZERS, TensorSettings, TrainConfig

OPTIMIZER_DEFAULTS = {"sgd": {"lr": 0.01, "weight_decay": 1e-4}, "adamw": {"lr": 1e-3, "weight_decay": 1e-2}}


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
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=(
        "\b\nExamples:\n"
        "  mmcurate reeval                                   # the work dir's balanced set\n"
        "  mmcurate reeval ORG/NAME --out results/           # a dataset on the Hub\n"
        "  mmcurate reeval mmcurate-work/ingest --out biased/ # the original, biased data\n"
        "  mmcurate reeval --methods joint,ogm_ge --seeds 0,1,2 --method-param ogm_ge.alpha=0.8"
    ),
)
@click.argument("source", required=False)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Results directory (default WORKDIR/reeval). Holds results.json/.csv/.md, plots and runs/ checkpoints.")
@workdir_option
@click.option("--methods", default="all", show_default=True,
              help="Comma-separated methods to run, in any common spelling (ogm_ge, OGM-GE, MMCosine, ReconBoost), "
                   "or 'all'; --list-methods shows them.")
@click.option("--list-methods", is_flag=True, is_eager=True, expose_value=False, callback=_list_methods,
              help="Print every method with its category and paper, then exit.")
@click.option("--seeds", default="0", show_default=True,
              help="Comma-separated seeds; every method runs once per seed and the tables give mean ± std.")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True, help="Training epochs, the same for every method.")
@click.option("--batch-size", type=click.IntRange(min=2), default=32, show_default=True, help="Mini-batch size.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Learning rate (default 0.01 for sgd, 0.001 for adamw); cosine-annealed over the epochs.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="sgd", show_default=True,
              help="sgd (momentum 0.9) keeps gradient modulation meaningful; adamw is an alternative.")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=None,
              help="Weight decay (default 1e-4 for sgd, 1e-2 for adamw).")
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N. The output says which was used.")
@click.option("--width", type=click.IntRange(min=1), default=None,
              help="ResNet-18 base width (64 = standard). Default 8 on CPU, 32 on CUDA.")
@click.option("--image-size", type=click.IntRange(min=8), default=None,
              help="Frames are resized to this square size. Default 32 on CPU, 64 on CUDA.")
@click.option("--num-frames", type=click.IntRange(min=1), default=3, show_default=True, help="Frames per clip, evenly spread.")
@click.option("--fusion", type=click.Choice(FUSIONS), default="concat", show_default=True,
              help="Fusion head of the joint models. film and gated have no per-modality logits (ogm_ge needs them).")
@click.option("--bins", type=click.IntRange(min=2), default=10, show_default=True,
              help="Equal-width discrepancy bins over [-1, 1] for an ingest+score SOURCE (a balanced export carries its own).")
@click.option("--audio-preset", default=None, help="Spectrogram preset of mmcurate.features (default: the data module's default).")
@click.option("--method-param", "method_params", multiple=True, metavar="METHOD.KEY=VALUE",
              help="Override a method hyper-parameter, e.g. ogm_ge.alpha=0.8, gblending.super_epoch=5, "
                   "greedy.window=5, pmr.alpha=1.0, agm.alpha=0.2, mmpareto.gamma=1.5. Repeatable.")
@click.option("--fresh", is_flag=True, help="Ignore checkpoints and finished runs in --out and train everything again.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPU threads for training (tiny CPU models gain little from more; shared cores lose a lot).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="datasets cache directory for a Hub SOURCE.")
def reeval(
    source: str | None,
    out_dir: str | None,
    workdir: str | None,
    methods: str,
    seeds: str,
    epochs: int,
    batch_size: int,
    lr: float | None,
    optimizer: str,
    weight_decay: float | None,
    device: str,
    width: int | None,
    image_size: int | None,
    num_frames: int,
    fusion: str,
    bins: int,
    audio_preset: str | None,
    method_params: tuple[str, ...],
    fresh: bool,
    threads: int,
    cache_dir: str | None,
) -> None:
    """Re-evaluate imbalance algorithms on a balanced dataset, per modality-discrepancy subset.

    SOURCE is a balanced dataset directory (default: WORKDIR/balanced), a Hugging Face Hub repo id
    ORG/NAME, or an ingest+score directory (WORKDIR/ingest, to re-evaluate on the original, biased
    data). Every method gets the same data, epochs, optimiser and seeds; the tested checkpoint is
    chosen on the validation split, never on test. Runs resume from their last checkpoint.
    """
    from mmcurate.reeval.runner import DEVICE_DEFAULTS, resolve_device, run_reeval

    dev = resolve_device(device)
    defaults = DEVICE_DEFAULTS[dev.type]
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr if lr is not None else OPTIMIZER_DEFAULTS[optimizer]["lr"],
        optimizer=optimizer,
        weight_decay=weight_decay if weight_decay is not None else OPTIMIZER_DEFAULTS[optimizer]["weight_decay"],
        width=width or defaults["width"],
        fusion=fusion,
        method_params=parse_method_params(method_params),
    )
    settings = TensorSettings(image_size=image_size or defaults["image_size"], num_frames=num_frames, audio_preset=audio_preset)
    out = Path(out_dir) if out_dir else stage_dir("reeval", workdir)
    outcome = run_reeval(
        source, out, parse_methods(methods), parse_seeds(seeds), cfg, settings, dev,
        workdir=workdir, bins=bins, fresh=fresh, cache_dir=cache_dir, threads=threads,
    )
    for kind, path in outcome.paths.items():
        click.echo(f"{kind}: {path}")


def parse_methods(text: str) -> list[str]:
    """'all' or a comma list in any accepted spelling -> registry names (duplicates dropped, order kept)."""
    from mmcurate.reeval.methods import METHODS, lookup_method

    names = [t.strip() for t in text.split(",") if t.strip()]
    if [n.lower() for n in names] == ["all"]:
        return list(METHODS)
    if not names:
        raise MMCurateError("--methods is empty")
    unknown = [n for n in names if lookup_method(n) is None]
    if unknown:
        raise MMCurateError(f"--methods: unknown method(s) {', '.join(unknown)}; choose from "
                            f"{', '.join(METHODS)} or 'all' (mmcurate reeval --list-methods)")
    return list(dict.fromkeys(str(lookup_method(n)) for n in names))


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise MMCurateError(f"--seeds {text!r}: expected comma-separated integers such as 0,1,2") from None
    if not seeds:
        raise MMCurateError("--seeds is empty")
    return list(dict.fromkeys(seeds))


def parse_method_params(items: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """('ogm_ge.alpha=0.8', ...) -> {'ogm_ge': {'alpha': 0.8}}; values parsed as YAML scalars."""
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        method, dot, param = key.strip().partition(".")
        if not sep or not dot or not method or not param:
            raise MMCurateError(f"--method-param {item!r}: expected METHOD.KEY=VALUE, e.g. ogm_ge.alpha=0.8")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        out.setdefault(_canonical(method.strip()), {})[param] = value
    return out


def _canonical(method: str) -> str:
    """A --method-param method name in any spelling -> its registry name (unknown: unchanged, checked later)."""
    from mmcurate.reeval.methods import lookup_method

    return lookup_method(method) or method
