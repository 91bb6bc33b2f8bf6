"""What must hold before several ingest folders are sampled as one pool (``balance --pool A --pool B``).

* **Same media settings.** Frames, frame size, audio rate and cached features decide what every
  model downstream sees; a pool of 8 kHz audio and 64 px frames mixed with one of 16 kHz and 224 px
  is two datasets under one card that states one setting. Pools that differ are refused, naming
  the setting.
* **No clip twice.** A clip copied under another name (in another pool, or in the same one) has its
  own sample id, so both copies could be selected, in different splits: a train/test leak. The
  manifest's sha256 of each source file finds them (balance refuses copies across pools and warns
  about copies inside one, which ingest already reported). Segments of one file share its hash and
  are not copies of each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mmcurate.common.errors import MMCurateError
from mmcurate.store.ingest_dir import IngestDir

#: ingest settings that change the stored media (the decode config's names)
MEDIA_SETTINGS = ("frames", "fps", "size", "jpeg_quality", "sample_rate", "features", "missing_modality")


def media_settings(ingest: IngestDir) -> dict[str, object] | None:
    """The settings of :data:`MEDIA_SETTINGS` an ingest folder was made with (None when config.json does not
    say: a folder made by other tools)."""
    identity = ingest.read_config().get("identity")
    config = identity.get("config") if isinstance(identity, dict) else None
    if not isinstance(config, dict):
        return None
    return {key: config.get(key) for key in MEDIA_SETTINGS}


def check_same_settings(pools: Mapping[object, IngestDir]) -> None:
    """A one-line error naming the first setting two pools were ingested with differently."""
    known = [(ingest, media_settings(ingest)) for ingest in pools.values()]
    known = [(ingest, s) for ingest, s in known if s is not None]
    if len(known) < 2:
        return
    first, want = known[0]
    for ingest, got in known[1:]:
        for key in MEDIA_SETTINGS:
            if got[key] != want[key]:
                flag = "--" + key.replace("_", "-")
                raise MMCurateError(
                    f"pools {first.path} and {ingest.path} were ingested with different {flag} ({want[key]!r} and "
                    f"{got[key]!r}); their media are not one dataset: ingest them again with the same settings"
                )


@dataclass(frozen=True)
class Copy:
    """A sample whose source file has the same bytes as an earlier sample's under another name."""

    pool: object
    sample_id: str
    original_pool: object
    original_id: str


def content_copies(pools: Mapping[object, IngestDir]) -> list[Copy]:
    """Every copy among the pools, in pool order then sample-id order (the first occurrence is the original:
    the seed pool's clip when a candidate pool repeats it)."""
    first: dict[str, tuple[object, str, str]] = {}
    copies = []
    for name, ingest in pools.items():
        manifest = ingest.read_manifest(["sample_id", "sha256", "path"]).sort_by("sample_id")
        columns = (manifest.column(c).to_pylist() for c in ("sample_id", "sha256", "path"))
        for sid, sha, path in zip(*columns, strict=True):
            if not sha:
                continue
            seen = first.setdefault(sha, (name, path, sid))
            if (seen[0], seen[1]) != (name, path):
                copies.append(Copy(name, sid, seen[0], seen[2]))
    return copies


def refuse_copies(pools: Mapping[object, IngestDir], copies: list[Copy], option: str) -> None:
    """The one-line refusal of :func:`content_copies`' findings, naming a pair."""
    if not copies:
        return
    c = copies[0]
    where = f"{c.sample_id!r} in {pools[c.pool].path} has the same bytes as {c.original_id!r}" + (
        "" if c.pool == c.original_pool else f" in {pools[c.original_pool].path}"
    )
    raise MMCurateError(
        f"{len(copies)} clip(s) are byte-identical copies of other clips under another name ({where}); both could "
        f"be selected, in different splits (a train/test leak): pass {option} to keep only the first of each "
        "(the seed pool's), or remove the copies"
    )
