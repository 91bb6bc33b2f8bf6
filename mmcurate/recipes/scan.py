"""Walking a raw dataset folder and reading its small text files, the same way for every adapter.

Every adapter must account for every file under RAW_DIR (as an item, a failure or an unlisted
file). One shared walk -- sorted POSIX paths relative to RAW_DIR -- keeps them consistent and
their output deterministic across machines and file systems.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from mmcurate.common.errors import MMCurateError
from mmcurate.common.files import MEDIA_EXTENSIONS as INGEST_MEDIA_EXTENSIONS
from mmcurate.common.files import list_files as common_list_files
from mmcurate.common.files import os_reason, read_regular_text
from mmcurate.common.media_probe import is_media_file
from mmcurate.common.options import MAX_SEED
from mmcurate.store.items import Discovery

#: Every extension ingest decodes (video and audio-only): the same set as folder discovery, so an
#: adapter and ``--layout folders`` agree on what counts as media.
MEDIA_EXTENSIONS = INGEST_MEDIA_EXTENSIONS


def require_dir(raw_dir: Path) -> Path:
    """``raw_dir`` as a Path, or a one-line error when it is not a folder."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise MMCurateError(f"{raw_dir}: raw data folder not found (pass the folder that holds the dataset release)")
    return raw_dir


def list_files(raw_dir: Path) -> list[str]:
    """Every non-hidden file under ``raw_dir`` (the walk of :mod:`mmcurate.common.files`, shared
    with folder discovery so an adapter and ``--layout folders`` see the same files)."""
    return common_list_files(require_dir(raw_dir))


def suffix(path: str) -> str:
    """Lower-case extension of a POSIX path, with the dot."""
    return PurePosixPath(path).suffix.lower()


def stem(path: str) -> str:
    """File name without its extension."""
    return PurePosixPath(path).stem


def is_media(path: str, raw_dir: Path | None = None) -> bool:
    """A file an adapter must decide about (video or audio); anything else is ignorable. With
    ``raw_dir``, a file without a known media extension is probed (FFmpeg reads many more
    containers than the extension list names)."""
    if raw_dir is None:
        return suffix(path) in MEDIA_EXTENSIONS
    return is_media_file(Path(raw_dir) / path)


def match_clip_name(disc: Discovery, path: str, pattern: re.Pattern[str], expected: str) -> re.Match[str] | None:
    """The match of a clip's file stem against a release's naming ``pattern``; when it does not
    match, the file is recorded as a failure saying which ``expected`` name it should have."""
    m = pattern.match(stem(path))
    if m is None:
        disc.fail(path, f"file name is not {expected}", sample_id=path)
    return m


def resolve_option_path(raw_dir: Path, value: str | os.PathLike[str]) -> Path:
    """An adapter option naming a file: relative paths are relative to RAW_DIR."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else Path(raw_dir) / p


def relative_to_raw(raw_dir: Path, path: Path) -> str | None:
    """POSIX path of ``path`` relative to ``raw_dir``, or None when it lies outside."""
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(raw_dir)).as_posix()
    except ValueError:
        return None


def display_name(raw_dir: Path, path: Path) -> str:
    """How a file is named in messages: relative to RAW_DIR when inside it, else as given."""
    return relative_to_raw(raw_dir, path) or str(path)


def read_text_lines(path: Path, what: str) -> list[str]:
    """Lines of a small UTF-8 text file (a BOM is tolerated), or a one-line error naming it."""
    try:
        text = read_regular_text(path, encoding="utf-8-sig")  # never a FIFO or device
    except FileNotFoundError:
        raise MMCurateError(f"{path}: {what} not found") from None
    except UnicodeDecodeError as exc:
        raise MMCurateError(f"{path}: {what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise MMCurateError(f"{path}: cannot read {what} ({os_reason(exc)})") from None
    return text.splitlines()


def as_fraction(name: str, value: object) -> float:
    """A fraction option (from YAML or ``--layout-option key=value``) checked to lie in [0, 1)."""
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MMCurateError(f"layout option {name}={value!r} is not a number; give a fraction such as 0.1") from None
    if not 0.0 <= f < 1.0:
        raise MMCurateError(f"layout option {name}={f:g} must be at least 0 and below 1")
    return f


def as_seed(name: str, value: object) -> int:
    """A seed option: an integer from 0 to ``MAX_SEED``."""
    seed = as_int(name, value)
    if not 0 <= seed <= MAX_SEED:
        raise MMCurateError(f"layout option {name}={str(seed)[:40]} must be from 0 to {MAX_SEED}")
    return seed


def as_int(name: str, value: object) -> int:
    """An integer option (a seed, a count)."""
    try:
        return int(str(value).strip())
    except ValueError:
        raise MMCurateError(f"layout option {name}={value!r} is not an integer") from None
