"""Check a Hub repository id before any network call, so a typo fails in a millisecond."""

from __future__ import annotations

import re

from mmcurate.common.errors import MMCurateError

_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_REPO_ID = re.compile(rf"^{_PART}/{_PART}$")
MAX_REPO_ID_LENGTH = 96


def validate_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` if it has the Hub's ``ORG/NAME`` form; else raise a one-line error.

    The rules are the Hub's: letters, digits, ``-``, ``_`` and ``.``; no leading or trailing
    punctuation, no ``--`` or ``..``, at most 96 characters.
    """
    rid = (repo_id or "").strip()
    problem = None
    if rid.count("/") != 1:
        problem = "it must be ORG/NAME with exactly one '/'"
    elif not _REPO_ID.match(rid):
        problem = (
            "ORG and NAME may hold letters, digits, '-', '_' and '.', and must start and end with a letter or digit"
        )
    elif "--" in rid or ".." in rid:
        problem = "'--' and '..' are not allowed"
    elif len(rid) > MAX_REPO_ID_LENGTH:
        problem = f"it is longer than {MAX_REPO_ID_LENGTH} characters"
    if problem:
        raise MMCurateError(
            f"--repo-id '{repo_id}' is not a Hub repository id: {problem} (e.g. my-org/av-digits-balanced)"
        )
    return rid
