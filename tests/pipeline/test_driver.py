"""The one unit driver (``mmcurate/execution/driver.py``): what every stage's resume semantics rest on.

Real files, real markers, a real process pool: a unit is skipped exactly when its marker matches and its
files are intact (by size, or by content with ``verify="sha256"``), a unit is marked only after its files
are written, and an array part that leaves units to the others says so and does not finish.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from mmcurate.common.atomic import atomic_write_text
from mmcurate.execution import ArrayJobExecutor, LocalExecutor, WorkUnit, make_units
from mmcurate.execution.driver import Completion, UnitDriver, Written
from mmcurate.store import UnitMarker


def square(x: int) -> int:
    return x * x


class Stage:
    """A tiny stage: units of numbers, each unit's squares written to ``out/unit-K.txt``."""

    def __init__(self, root: Path, n: int = 10, size: int = 3, identity: str = "v1") -> None:
        self.root, self.identity = root, identity
        self.units = make_units(list(range(n)), size, lambda k: f"unit-{k}")
        self.written: list[int] = []
        self.verify = "size"

    def completion(self, verify: str | None = None) -> Completion[int]:
        return Completion(
            marker=lambda u: UnitMarker(self.root / "markers" / f"{u.key}.json", self.root),
            identity=lambda u: f"{self.identity}-{u.index}",
            verify=verify or self.verify,  # type: ignore[arg-type]
        )

    def path(self, unit: WorkUnit[int]) -> Path:
        return self.root / f"{unit.key}.txt"

    def write(self, unit: WorkUnit[int], results: list[int]) -> Written:
        assert not self.completion().done(unit), "a unit is written before it is marked"
        atomic_write_text(self.path(unit), " ".join(map(str, results)))
        self.written.append(unit.index)
        return Written([self.path(unit)], {"sum": sum(results)})

    def run(self, executor: object, verify: str = "size") -> tuple[UnitDriver[int], bool]:
        self.verify = verify
        driver = UnitDriver("test", "unit", self.units, self.completion(), executor)  # type: ignore[arg-type]
        driver.run(lambda: square, self.write, progress="squares", count_items=True)
        return driver, driver.finish("total.txt")


def test_units_are_written_then_marked_and_skipped_when_rerun(tmp_path: Path) -> None:
    stage = Stage(tmp_path)
    driver, done = stage.run(LocalExecutor(2))
    assert done and driver.written == 4 and driver.done_before == 0
    assert (tmp_path / "unit-3.txt").read_text() == "81"
    assert stage.completion().payload(stage.units[1]) == {"sum": 9 + 16 + 25}
    again = Stage(tmp_path)
    driver, done = again.run(LocalExecutor(1))
    assert done and driver.written == 0 and driver.done_before == 4 and again.written == []


def test_a_changed_identity_or_a_damaged_file_redoes_that_unit_only(tmp_path: Path) -> None:
    stage = Stage(tmp_path)
    stage.run(LocalExecutor(1))
    path = stage.path(stage.units[2])
    path.write_text(path.read_text()[:-1] + "0")  # same size, other bytes
    by_size = Stage(tmp_path)
    by_size.run(LocalExecutor(1))
    assert by_size.written == []  # size check: the damage is not seen
    by_content = Stage(tmp_path)
    by_content.run(LocalExecutor(1), verify="sha256")
    assert by_content.written == [2] and path.read_text() == "36 49 64"
    stage.path(stage.units[0]).unlink()
    missing = Stage(tmp_path)
    missing.run(LocalExecutor(1))
    assert missing.written == [0]
    changed = Stage(tmp_path, identity="v2")
    changed.run(LocalExecutor(1))
    assert changed.written == [0, 1, 2, 3]


def test_a_unit_whose_write_fails_is_not_marked(tmp_path: Path) -> None:
    stage = Stage(tmp_path)

    def failing(unit: WorkUnit[int], results: list[int]) -> Written:
        if unit.index == 1:
            raise OSError("disk full")
        return stage.write(unit, results)

    driver = UnitDriver("test", "unit", stage.units, stage.completion(), LocalExecutor(1))
    with pytest.raises(OSError):
        driver.run(lambda: square, failing)
    assert [stage.completion().done(u) for u in stage.units] == [True, False, False, False]
    rerun = Stage(tmp_path)
    rerun.run(LocalExecutor(1))
    assert rerun.written == [1, 2, 3]


def test_array_parts_each_write_their_share_and_the_last_one_finishes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = Stage(tmp_path)
    driver, done = first.run(ArrayJobExecutor(2, 0, LocalExecutor(1)))
    assert not done and first.written == [0, 2]
    err = capsys.readouterr().err
    assert "this part is done; 2 of 4 units belong to other array parts" in err and "writes total.txt" in err
    second = Stage(tmp_path)
    driver, done = second.run(ArrayJobExecutor(2, 1, LocalExecutor(1)))
    assert done and second.written == [1, 3] and driver.done_before == 0
    assert "this part is done" not in capsys.readouterr().err


def test_the_work_function_is_built_only_when_something_is_pending(tmp_path: Path) -> None:
    stage = Stage(tmp_path)
    stage.run(LocalExecutor(1))
    built = []

    def build() -> object:
        built.append(1)
        return functools.partial(square)

    driver = UnitDriver("test", "unit", stage.units, stage.completion(), LocalExecutor(1))
    assert driver.run(build, stage.write) == 0 and built == []
