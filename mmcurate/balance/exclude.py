"""``mmcurate balance --exclude FILE``: clips a person marked (in ``mmcurate browse``) left out of the set.

The file is the browse page's export: one sample_id per line; blank lines and ``#`` comments
(whole line or trailing) are skipped. An id that is not in the scored pool is a one-line error
naming the file and line: a typo must not silently keep a clip someone meant to drop.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from mmcurate.common.errors import MMCurateError


def read_exclude(path: Path, known: Collection[str]) -> list[str]:
    """The sample_ids listed in ``path`` (sorted, distinct), each checked against ``known``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MMCurateError(f"{path}: --exclude file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MMCurateError(f"{path}: cannot read the --exclude file ({exc.__class__.__name__})") from None
    known_set = set(known)
    ids: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        sid = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not sid:
            continue
        if sid not in known_set:
            raise MMCurateError(
                f"{path}:{number}: unknown sample_id {sid!r} (not in the scored pool); fix or remove the line"
            )
        ids.add(sid)
    return sorted(ids)
