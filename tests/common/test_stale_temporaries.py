"""Temporaries a killed run left are removed; with an age guard, a temporary another live process (a rank
sharing the results folder) may be writing is kept."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mmcurate.common.atomic import TMP_PREFIX, clean_stale_temporaries, make_temp_dir


def test_only_old_owned_temporaries_go_when_an_age_is_given(tmp_path: Path) -> None:
    old = make_temp_dir(TMP_PREFIX + "reeval-tensors.", tmp_path)
    live = make_temp_dir(TMP_PREFIX + "reeval-tensors.", tmp_path)
    other = make_temp_dir(TMP_PREFIX + "results.json.", tmp_path)
    hours_ago = time.time() - 7 * 3600
    os.utime(old, (hours_ago, hours_ago))
    os.utime(other, (hours_ago, hours_ago))
    removed = clean_stale_temporaries(tmp_path, lambda dest: dest == "reeval-tensors", older_than=6 * 3600)
    assert removed == 1 and not old.exists() and live.exists() and other.exists()
    assert clean_stale_temporaries(tmp_path, lambda dest: dest == "reeval-tensors") == 1  # no age: any
    assert not live.exists() and other.exists()
