"""``mmcurate ingest RAW_DIR``: the command-line face of :mod:`mmcurate.ingest`."""

from __future__ import annotations

import os
from pathlib import Path

import click

from mmcurate.common.cli_options import workdir_option
from mmcurate.common.errors import MMCurateError
from mmcurate.common.workdir import stage_dir
from mmcurate.ingest.config import DECODERS, MISSING_MODALITY_POLICIES, IngestConfig
from mmcurate.ingest.runner import IngestRequest, print_summary, run_ingest


def _parse_options(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise MMCurateError(f"--layout-option expects key=value (got {pair!r})")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _env_int(*names: str) -> int | None:
    for name in names:
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return None


@click.command("ingest", context_settings={"show_default": True})
@click.argument("raw_dir", type=click.Path(path_type=Path))
@workdir_option
@click.option("--out", type=click.Path(path_type=Path), default=None, show_default=False,
              help="Output folder (default: WORKDIR/ingest).")
@click.option("--manifest", type=click.Path(path_type=Path), default=None,
              help="CSV/TSV/JSONL listing the inputs: path,label[,split][,group][,start,end] (paths relative to "
                   "RAW_DIR); other columns are kept in manifest.parquet. Without it, RAW_DIR/<label>/<clip> is used.")
@click.option("--layout", default=None,
              help="Dataset adapter that knows a release's layout: folders (default), manifest, cremad, "
                   "kinetics_sounds, vggsound, ave.")
@click.option("--layout-option", "layout_options", multiple=True, metavar="KEY=VALUE",
              help="Option passed to the --layout adapter (repeatable), e.g. annotations=Annotations.txt.")
@click.option("--group-column", default=None,
              help="Input-manifest column whose value must not cross splits (e.g. speaker, youtube_id).")
@click.option("--classes", "classes_file", type=click.Path(path_type=Path), default=None,
              help="Class list: a file (one name per line) or a shipped list by name (cremad, kinetics_sounds, "
                   "vggsound, ave, demo). Fixes the label order; labels not in it fail. Default: the sorted labels found.")
@click.option("--frames", type=int, default=3, help="Frames per clip, evenly spaced (centres of equal parts).")
@click.option("--fps", type=float, default=None, help="Sample frames at this rate instead of --frames.")
@click.option("--size", type=int, default=224, help="Frame short side in pixels, then centre crop (0 = native).")
@click.option("--jpeg-quality", type=int, default=90, help="JPEG quality of stored frames.")
@click.option("--sample-rate", type=int, default=16000, help="Audio is mixed to mono and resampled to this rate.")
@click.option("--features", default=None,
              help="Also cache audio features (float16) in the shards: a preset such as logmel, cremad_stft, "
                   "vggsound_stft, ks_fbank.")
@click.option("--missing-modality", type=click.Choice(MISSING_MODALITY_POLICIES), default="reject",
              help="A clip without audio or video: reject it (to failures.jsonl), keep it with the modality "
                   "empty, or zero-fill (black frames / silence). has_audio/has_video record the truth.")
@click.option("--video-stream", type=int, default=0, help="Which video stream of multi-stream files (0 = first).")
@click.option("--audio-stream", type=int, default=0, help="Which audio stream of multi-stream files (0 = first).")
@click.option("--tolerate-decode-errors", is_flag=True, default=False,
              help="Skip corrupt packets instead of failing the clip.")
@click.option("--min-coverage", type=float, default=0.85,
              help="Fail a clip that decodes less than this fraction of the duration its container declares "
                   "(truncated files); 0 disables.")
@click.option("--decoder", type=click.Choice(DECODERS), default="pyav",
              help="Video decoder. decord is an optional fast path (pip install mmcurate[decord]); any decord "
                   "error falls back to PyAV for that file.")
@click.option("--shard-size", type=int, default=256, help="Samples per Arrow shard (the unit of resume).")
@click.option("--workers", type=int, default=0, help="Decoding processes (0 = all cores).")
@click.option("--num-shards", type=int, default=None,
              help="Split the input into this many array-job parts (default 1, or $SLURM_ARRAY_TASK_COUNT).")
@click.option("--shard-index", type=int, default=None,
              help="Which part this process does (default 0, or $SLURM_ARRAY_TASK_ID).")
@click.option("--max-failures", type=int, default=None,
              help="Exit with status 3 when more inputs than this fail (default: report only).")
@click.option("--overwrite", is_flag=True, default=False,
              help="Replace an output folder made with different settings (otherwise that is an error).")
@click.option("--dataset-name", default=None, help="Source dataset name, recorded for the dataset card.")
@click.option("--license", "license_", default=None, help="Source dataset licence, recorded for the dataset card.")
def ingest(raw_dir: Path, workdir: str | None, out: Path | None, manifest: Path | None, layout: str | None,
           layout_options: tuple[str, ...], group_column: str | None, classes_file: Path | None, frames: int,
           fps: float | None, size: int, jpeg_quality: int, sample_rate: int, features: str | None,
           missing_modality: str, video_stream: int, audio_stream: int, tolerate_decode_errors: bool,
           min_coverage: float, decoder: str, shard_size: int, workers: int, num_shards: int | None,
           shard_index: int | None, max_failures: int | None, overwrite: bool, dataset_name: str | None,
           license_: str | None) -> None:
    """Decode the clips under RAW_DIR into Arrow shards with a manifest.

    Every input ends in exactly one of manifest.parquet or failures.jsonl (with a one-line
    reason). Rerunning resumes an interrupted run and does nothing after a finished one.
    """
    num_shards = num_shards or _env_int("SLURM_ARRAY_TASK_COUNT") or 1
    shard_index = shard_index if shard_index is not None else (_env_int("SLURM_ARRAY_TASK_ID") or 0)
    cfg = IngestConfig(
        frames=frames, fps=fps, size=size, jpeg_quality=jpeg_quality, sample_rate=sample_rate, features=features,
        missing_modality=missing_modality, video_stream=video_stream, audio_stream=audio_stream,
        tolerate_decode_errors=tolerate_decode_errors, min_coverage=min_coverage, decoder=decoder,
        shard_size=shard_size, workers=workers, num_shards=num_shards, shard_index=shard_index,
    )
    source = {k: v for k, v in (("name", dataset_name), ("license", license_)) if v}
    req = IngestRequest(
        raw_dir=raw_dir, out_dir=out or stage_dir("ingest", workdir), config=cfg, manifest=manifest,
        layout=layout, layout_options=_parse_options(layout_options), group_column=group_column,
        classes_file=classes_file, overwrite=overwrite, max_failures=max_failures, source=source,
    )
    result = run_ingest(req)
    print_summary(result)
    click.echo(str(result.out_dir))
    if result.failed_over_limit:
        err = MMCurateError(f"{result.n_failed} inputs failed, more than --max-failures {max_failures}")
        err.exit_code = 3
        raise err
