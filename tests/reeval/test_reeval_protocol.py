"""The re-evaluation protocol on real (tiny) training runs: what is read when, what is tested, and
the statistics the report states.

Each test here fails when the defect it names is put back: the validation split read during
training, G-Blending weights from anything but a per-head look-ahead on a train hold-out at the
start of each super-epoch, test metrics from the last instead of the best-validation checkpoint,
a wrong interval, a sparse bin plotted as a percentage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from _reeval_fixtures import tensor_data

from mmcurate.reeval import trainer
from mmcurate.reeval.config import TrainConfig
from mmcurate.reeval.contribution import coalition_correctness, shapley_contribution
from mmcurate.reeval.data import ReevalData, SplitData
from mmcurate.reeval.holdout import holdout_split
from mmcurate.reeval.methods import EPOCH_HOOKS, METHODS, epochs_for_every_event, get_method
from mmcurate.reeval.methods import gblending as gb
from mmcurate.reeval.methods.base import Method
from mmcurate.reeval.stats import MIN_SAMPLES, t_interval, wilson_interval

CPU = torch.device("cpu")
TINY = TrainConfig(epochs=2, batch_size=4, width=2, lr=0.05)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


# ----------------------------------------------------------------------------------------- val spy


class _ReadLog:
    """Which of a split's tensors were read, and whether the trainer's validation step was running."""

    def __init__(self) -> None:
        self.sanctioned = 0
        self.phase = "training"
        self.unsanctioned: list[str] = []


class SpySplit(SplitData):
    """A real split whose every field read is recorded (the spy on the validation split)."""

    log: _ReadLog

    def __getattribute__(self, name: str) -> Any:
        if name in ("frames", "audio", "labels", "sample_ids", "discrepancy", "bins", "groups"):
            log = object.__getattribute__(self, "log")
            if log.phase == "training":
                log.unsanctioned.append(name)
            else:
                log.sanctioned += 1
        return object.__getattribute__(self, name)

    def __len__(self) -> int:
        log = object.__getattribute__(self, "log")
        if log.phase == "training":
            log.unsanctioned.append("len")
        return int(object.__getattribute__(self, "labels").shape[0])


def _spied(data: ReevalData, monkeypatch: pytest.MonkeyPatch) -> _ReadLog:
    """Replace ``data.val`` by a spy; reads are allowed only in ``_validate`` and the data fingerprint."""
    log = _ReadLog()
    v = data.val
    spy = SpySplit(v.name, v.frames, v.audio, v.labels, v.sample_ids, v.discrepancy, v.bins, v.groups)
    object.__setattr__(spy, "log", log)
    data.val = spy

    def allowed(fn):  # noqa: ANN001, ANN202
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            log.phase = "allowed"
            try:
                return fn(*args, **kwargs)
            finally:
                log.phase = "training"

        return wrapper

    monkeypatch.setattr(trainer, "_validate", allowed(trainer._validate))
    monkeypatch.setattr(ReevalData, "fingerprint", allowed(ReevalData.fingerprint))
    return log


#: variants that read other data than the default does (a hold-out of their own)
SPY_VARIANTS: list[tuple[str, dict[str, Any]]] = [("lfm", {"schedule": "learnable"}), ("mbsd", {"variant": "distill"})]


@pytest.mark.parametrize(("name", "params"), [(n, {}) for n in METHODS] + SPY_VARIANTS)
def test_no_method_reads_the_validation_split_while_training(
    name: str, params: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each method runs long enough for every event of its own schedule to happen (a diagnosis, a re-estimate,
    the end of a warm-up), with its default parameters: no periodic hook hides behind a short run."""
    epochs = epochs_for_every_event(name, **params)
    events = get_method(name, width=2, epochs=epochs, **params).schedule()
    assert all(events.values()), f"{name}: {epochs} epochs leave an event of {events} unhappened"
    data = tensor_data(n_train=18, n_val=8, n_test=8)
    log = _spied(data, monkeypatch)
    cfg = TrainConfig(epochs=epochs, batch_size=4, width=2, lr=0.05, method_params={name: params} if params else {})
    trainer.train_run(name, data, cfg, 0, tmp_path, CPU)
    assert log.sanctioned > 0, "the spy saw no validation at all: it is not watching the split the trainer uses"
    assert log.unsanctioned == [], f"{name} read the validation split while training: {sorted(set(log.unsanctioned))}"
    # what a resume loads holds weights, numbers and strings only: it loads with weights_only
    state = torch.load(tmp_path / "runs" / name / "seed0" / "last.pt", weights_only=True)
    assert state["epoch"] == epochs - 1


class _Planted:
    """A pickle that runs code when loaded (what an attacker would put in place of a checkpoint)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("name", ["last.pt", "best.pt"])
def test_a_planted_checkpoint_is_refused_and_never_run(name: str, tmp_path: Path) -> None:
    import pickle

    from mmcurate.common.errors import MMCurateError

    data = tensor_data(n_train=12, n_val=8, n_test=8)
    trainer.train_run("joint", data, TINY, 0, tmp_path, CPU)
    run_dir = tmp_path / "runs" / "joint" / "seed0"
    marker = tmp_path / "code-ran"
    (run_dir / "result.json").unlink()  # not finished: the run resumes from last.pt
    if name == "best.pt":  # ... with no epoch left to train, then tests its best.pt
        state = torch.load(run_dir / "last.pt", weights_only=True)
        state["epoch"] = TINY.epochs - 1
        torch.save(state, run_dir / "last.pt")
    with open(run_dir / name, "wb") as fh:
        pickle.dump({"model": _Planted(marker), "config_hash": "x"}, fh)
    with pytest.raises(MMCurateError, match=f"{name}: not a plain weights checkpoint"):
        trainer.train_run("joint", data, TINY, 0, tmp_path, CPU)
    assert not marker.exists()


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_whose_behaviour_depends_on_the_epoch_declares_when(name: str) -> None:
    """A method that overrides an epoch hook, or has a schedule-like parameter, says in ``schedule()`` when it acts,
    so the validation spy above runs it long enough; the declared epochs are inside the run."""
    cls = METHODS[name]
    overrides = [h for h in EPOCH_HOOKS if getattr(cls, h) is not getattr(Method, h)]
    scheduled = [k for k in cls.defaults if any(w in k for w in ("epoch", "every", "warmup", "modulation", "window"))]
    if overrides or scheduled:
        assert cls.schedule is not Method.schedule, (
            f"{name} overrides {overrides or scheduled} but declares no schedule"
        )
    for epochs in (2, 5, 20):
        for event, when in get_method(name, width=2, epochs=epochs).schedule().items():
            assert all(0 <= e < epochs for e in when), f"{name}: event {event} at {when} outside {epochs} epochs"


def test_relearning_diagnoses_on_a_train_hold_out_at_its_scheduled_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The diagnosis compares the training part with a hold-out carved from train (group-disjoint, never trained
    on), at the epochs its schedule names; validation is never read (the spy test), the hold-out never trained."""
    from mmcurate.reeval.methods import relearning as rl

    data = tensor_data(n_train=30, n_val=8, n_test=8)
    seen: list[tuple[int, list[int]]] = []
    trained: list[int] = []
    real_features = rl.ReLearning._features

    def features_spy(self, model, ctx, positions):  # noqa: ANN001, ANN202
        seen.append((ctx.epoch, positions.tolist()))
        return real_features(self, model, ctx, positions)

    real_loss = rl.ReLearning.loss

    def loss_spy(self, model, batch, out, ctx):  # noqa: ANN001, ANN202
        trained.extend(batch.index.tolist())
        return real_loss(self, model, batch, out, ctx)

    monkeypatch.setattr(rl.ReLearning, "_features", features_spy)
    monkeypatch.setattr(rl.ReLearning, "loss", loss_spy)
    cfg = TrainConfig(epochs=6, batch_size=4, width=2, lr=0.01, method_params={"relearning": {"every": 2}})
    result = trainer.train_run("relearning", data, cfg, 0, tmp_path, CPU)
    expected = get_method("relearning", width=2, epochs=6, every=2).schedule()["diagnosis"]
    assert expected == [3, 5]
    assert [e for e, _ in seen] == [3, 3, 5, 5]  # training part, then hold-out, at each diagnosis
    kept, held = seen[0][1], seen[1][1]
    assert held and not set(kept) & set(held) and set(kept) | set(held) == set(range(30))
    groups = data.train.groups
    assert not {groups[i] for i in kept} & {groups[i] for i in held}
    assert set(trained) == set(kept)  # the model never trains on the hold-out
    diagnosed = [h["epoch"] for h in result.history if "epoch_end_reinit_audio" in h]
    assert diagnosed == expected


# ----------------------------------------------------------------------------------------- G-Blending


@pytest.mark.slow
def test_gblending_estimates_from_per_head_look_ahead_at_each_super_epoch_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tensor_data(n_train=20, n_val=8, n_test=8)
    calls: list[dict[str, Any]] = []
    measures: list[tuple[list[int], np.ndarray]] = []
    used: list[tuple[int, int, tuple[float, ...]]] = []
    main_batches: list[int] = []

    real_look_ahead, real_sample_losses, real_loss = gb.look_ahead, gb.sample_losses, gb.GBlending.loss

    def look_ahead_spy(model, head, ctx, train_pos, hold_pos, epochs, seed):  # noqa: ANN001, ANN202
        before = [p.detach().clone() for p in model.parameters()]
        result = real_look_ahead(model, head, ctx, train_pos, hold_pos, epochs, seed)
        assert all(torch.equal(b, p) for b, p in zip(before, model.parameters())), "look-ahead changed the run's model"
        calls.append(
            {
                "epoch": ctx.epoch,
                "head": head,
                "train": train_pos.tolist(),
                "hold": hold_pos.tolist(),
                "epochs": epochs,
                "result": result,
                "step": ctx.step,
            }
        )
        return result

    def sample_losses_spy(model, data_, positions, batch_size, device):  # noqa: ANN001, ANN202
        out = real_sample_losses(model, data_, positions, batch_size, device)
        measures.append((positions.tolist(), out.mean(axis=0)))
        return out

    def loss_spy(self, model, batch, out, ctx):  # noqa: ANN001, ANN202
        used.append((ctx.epoch, ctx.step, tuple(float(w) for w in self.weights)))
        main_batches.extend(batch.index.tolist())
        return real_loss(self, model, batch, out, ctx)

    monkeypatch.setattr(gb, "look_ahead", look_ahead_spy)
    monkeypatch.setattr(gb, "sample_losses", sample_losses_spy)
    monkeypatch.setattr(gb.GBlending, "loss", loss_spy)
    cfg = TrainConfig(epochs=5, batch_size=4, width=2, lr=0.05, method_params={"gblending": {"super_epoch": 2}})
    result = trainer.train_run("gblending", data, cfg, 0, tmp_path, CPU)

    # estimates at the start of epochs 0, 2, 4, before that epoch's first step, one look-ahead per head
    assert [(c["epoch"], c["head"]) for c in calls] == [(e, h) for e in (0, 2, 4) for h in gb.HEADS]
    steps = trainer.num_batches(len(calls[0]["train"]), 4, drop_singleton=True)
    assert all(c["step"] == c["epoch"] * steps and c["epochs"] == 2 for c in calls)
    # a group-disjoint hold-out of train, the same every time; the main loop trains on the rest only
    train_pos, hold_pos = calls[0]["train"], calls[0]["hold"]
    assert hold_pos and set(train_pos) | set(hold_pos) == set(range(20)) and not set(train_pos) & set(hold_pos)
    groups = data.train.groups
    assert not {groups[i] for i in train_pos} & {groups[i] for i in hold_pos}
    assert all(c["train"] == train_pos and c["hold"] == hold_pos for c in calls)
    assert set(main_batches) == set(train_pos)  # the main model never trains on the hold-out either
    # weights: uniform never used; constant within a super-epoch; equal to the OGR weights of that epoch's look-ahead
    by_epoch: dict[int, set[tuple[float, ...]]] = {}
    for epoch, _, w in used:
        by_epoch.setdefault(epoch, set()).add(w)
    assert all(len(ws) == 1 for ws in by_epoch.values())
    for e in (0, 2, 4):
        est = [c for c in calls if c["epoch"] == e]
        t_before, v_before = _before_losses(measures, train_pos, hold_pos, e)
        t_after = np.array([c["result"][0] for c in est])
        v_after = np.array([c["result"][1] for c in est])
        expected = gb.gblending_weights(v_before - v_after, (v_after - t_after) - (v_before - t_before))
        if expected is None:  # no head generalised: the previous weights stay
            expected = np.full(3, 1 / 3) if e == 0 else np.array(next(iter(by_epoch[e - 1])))
        np.testing.assert_allclose(next(iter(by_epoch[e])), expected, rtol=1e-9)
        if e + 1 in by_epoch:
            assert by_epoch[e + 1] == by_epoch[e]  # no update inside a super-epoch
    hist = {h["epoch"]: h for h in result.history}
    assert [e for e in hist if "epoch_end_dG_fused" in hist[e]] == [0, 2, 4]


def _before_losses(  # noqa: ANN202
    measures: list[tuple[list[int], np.ndarray]], train_pos: list[int], hold_pos: list[int], epoch: int
):
    """The checkpoint's (L_T, L_V) measured at estimate number ``epoch // 2``: the pair of mean_losses calls
    that is not followed by a look-ahead's own measurements (those come in pairs after training)."""
    # per estimate: 2 checkpoint measurements, then 2 per head (3 heads) = 8 calls
    k = epoch // 2
    block = measures[8 * k : 8 * k + 8]
    assert block[0][0] == train_pos and block[1][0] == hold_pos
    return block[0][1], block[1][1]


def test_holdout_is_group_disjoint_deterministic_and_label_stratified_without_groups() -> None:
    labels = [str(i % 3) for i in range(30)]
    groups = [f"spk{i // 3}" for i in range(30)]
    kept, held = holdout_split(labels, groups, 0.2, seed=0)
    assert len(held) == 6 and not {groups[i] for i in kept} & {groups[i] for i in held}
    again = holdout_split(labels, groups, 0.2, seed=0)
    assert kept.tolist() == again[0].tolist() and held.tolist() == again[1].tolist()
    kept, held = holdout_split(labels, None, 0.2, seed=0)
    assert sorted(labels[i] for i in held) == ["0", "0", "1", "1", "2", "2"]


# ----------------------------------------------------------------------------------------- selection


class _Scripted(Method):
    """Test fixture: after each epoch, the head predicts a scripted class for every input."""

    name = "scripted"
    title = "Scripted"
    reference = "test fixture"
    defaults: dict[str, Any] = {}

    def on_epoch_end(self, model: torch.nn.Module, ctx: Any) -> dict[str, float]:
        cls = 0 if ctx.epoch == 0 else 1
        with torch.no_grad():
            model.head.fc.weight.zero_()
            model.head.fc.bias.copy_(torch.nn.functional.one_hot(torch.tensor(cls), model.num_classes).float() * 10)
        return {}


def test_test_metrics_come_from_the_best_validation_checkpoint_not_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tensor_data(n_train=8, n_val=4, n_test=4, classes=2)
    labels = torch.tensor([0, 0, 0, 1])
    data.val.labels = labels.clone()
    data.test = data.val  # validation accuracy is then test accuracy: 0.75 after epoch 0, 0.25 after epoch 1
    monkeypatch.setitem(METHODS, "scripted", _Scripted)
    result = trainer.train_run("scripted", data, TINY, 0, tmp_path, CPU)
    assert [round(h["val_acc"], 2) for h in result.history] == [0.75, 0.25]
    assert result.best_epoch == 0
    assert result.test["accuracy"]["overall"] == pytest.approx(0.75)  # the last checkpoint would give 0.25
    preds = pq.read_table(tmp_path / "runs" / "scripted" / "seed0" / "predictions.parquet")
    assert preds.column("pred").to_pylist() == [0, 0, 0, 0]


# ----------------------------------------------------------------------------------------- statistics


def test_wilson_interval_by_hand() -> None:
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    lo, hi = wilson_interval(0, 3)
    assert lo == 0.0 and hi == pytest.approx(0.5615, abs=1e-4)  # 0 of 3 is not "0 % +- 0"
    assert wilson_interval(0, 0) is None


def test_t_interval_over_seeds_by_hand() -> None:
    lo, hi = t_interval([0.5, 0.7])
    half = 12.7062047 * np.std([0.5, 0.7], ddof=1) / np.sqrt(2)
    assert lo == pytest.approx(0.6 - half, rel=1e-6) and hi == pytest.approx(0.6 + half, rel=1e-6)
    assert t_interval([0.5]) is None


def test_summary_states_wilson_for_one_seed_and_t_for_several() -> None:
    from mmcurate.reeval.metrics import evaluate_predictions
    from mmcurate.reeval.report import summarise
    from mmcurate.reeval.trainer import RunResult

    labels = np.array([0, 1] * 10)
    d = np.linspace(-1, 1, 20)
    bins = np.minimum(((d + 1) / 2 * 4).astype(int), 3)

    def run(seed: int, wrong: int) -> RunResult:
        pred = labels.copy()
        pred[:wrong] ^= 1
        return RunResult("joint", seed, 0, 0.5, 0.1, evaluate_predictions(pred, labels, d, bins, 4, 2), [], {})

    one = summarise([run(0, 4)])["joint"]["acc"]
    assert one["ci"] == "wilson" and one["count"] == 20
    assert (one["ci_low"], one["ci_high"]) == pytest.approx(wilson_interval(16, 20))
    several = summarise([run(0, 4), run(1, 2)])["joint"]["acc"]
    lo, hi = t_interval([0.8, 0.9])
    assert several["ci"] == "t"
    assert (several["ci_low"], several["ci_high"]) == pytest.approx((max(0.0, lo), min(1.0, hi)))


def test_bin_plot_greys_sparse_bins_and_never_plots_them(tmp_path: Path) -> None:
    from mmcurate.reeval.metrics import evaluate_predictions
    from mmcurate.reeval.report import bins_figure, summarise
    from mmcurate.reeval.trainer import RunResult

    data = tensor_data()
    # bin 0: 3 samples, all wrong (the old plot drew 0 %); bins 1-3: 12 samples each
    bins = np.array([0] * 3 + [1] * 12 + [2] * 12 + [3] * 12)
    labels = np.zeros(bins.size, dtype=int)
    pred = np.where(bins == 0, 1, 0)
    d = -1 + (bins + 0.5) / 2
    runs = [RunResult("joint", 0, 0, 1.0, 0.1, evaluate_predictions(pred, labels, d, bins, 4, 2), [], {})]
    fig = bins_figure(data, summarise(runs))
    ax = fig.axes[0]
    line = ax.lines[0]
    ys = np.asarray(line.get_ydata(), dtype=float)
    assert np.isnan(ys[0]) and np.allclose(ys[1:], 100.0)
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert len(hatched) == 1 and hatched[0].get_x() == pytest.approx(-0.5)
    assert "n=3" in ax.get_xticklabels()[0].get_text()
    assert 3 < MIN_SAMPLES <= 12


# ----------------------------------------------------------------------------------------- contribution


def test_shapley_contribution_by_hand() -> None:
    c = {
        "av": np.array([1, 1, 0, 1]),
        "a0": np.array([1, 0, 0, 1]),
        "0v": np.array([0, 1, 0, 0]),
        "00": np.array([0, 0, 0, 1]),
    }
    summary, per_sample = shapley_contribution({k: v.astype(bool) for k, v in c.items()})
    # accuracies: av .75, a0 .5, 0v .25, 00 .25
    assert summary["dataset"]["audio"] == pytest.approx(0.5 * ((0.75 - 0.25) + (0.5 - 0.25)))
    assert summary["dataset"]["visual"] == pytest.approx(0.5 * ((0.75 - 0.5) + (0.25 - 0.25)))
    assert summary["dataset"]["imbalance"] == pytest.approx(0.25)
    np.testing.assert_allclose(per_sample["audio"], [1.0, 0.0, 0.0, 1.0])  # empty coalition counted wrong
    np.testing.assert_allclose(per_sample["visual"], [0.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(per_sample["audio"] + per_sample["visual"], c["av"])


def test_contribution_zeroes_the_inputs_of_a_real_model() -> None:
    torch.manual_seed(0)
    data = tensor_data()
    method = get_method("audio_only", width=2)
    model = method.build_model(4)
    c = coalition_correctness(method, model, data.test, data, 4, CPU)
    assert np.array_equal(c["av"], c["a0"]) and np.array_equal(c["0v"], c["00"])  # the visual input is ignored
    summary, _ = shapley_contribution(c)
    assert summary["dataset"]["visual"] == 0.0


def test_results_carry_contribution_diagnostics_and_counts(tmp_path: Path) -> None:
    from mmcurate.reeval.report import write_report

    data = tensor_data(n_train=12, n_val=8, n_test=12)
    cfg = TrainConfig(epochs=2, batch_size=4, width=2, lr=0.05)
    runs = [trainer.train_run(m, data, cfg, 0, tmp_path, CPU) for m in ("joint", "greedy")]
    paths = write_report(tmp_path, data, runs, {"epochs": 2}, "cpu")
    doc = json.loads(paths["json"].read_text())
    assert set(doc["runs"][0]["test"]["contribution"]["dataset"]) == {"audio", "visual", "imbalance"}
    greedy = doc["diagnostics"]["greedy"]["epoch_end_rebalancing_share"]
    assert greedy["epochs"] == [0, 1] and greedy["per_seed"]["0"][0] == 0.0  # nothing re-balances in the warm-up epoch
    assert paths["diagnostics_greedy_png"].is_file() and "joint" not in doc["diagnostics"]
    md = paths["markdown"].read_text()
    assert "Wilson" in md and "Modality contribution" in md and "n=12" in md
    preds = pq.read_table(tmp_path / "runs" / "joint" / "seed0" / "predictions.parquet")
    assert {"shapley_audio", "shapley_visual"} <= set(preds.column_names)


def test_a_users_folder_with_results_files_and_runs_is_not_taken_for_a_reeval_output(tmp_path: Path) -> None:
    """A folder holding a user's results.csv, timings.json and a runs/ folder (common names) is refused without
    --overwrite: only a results.json that reeval wrote marks a folder as a (pre-owner-file) reeval output."""
    from mmcurate.common.errors import MMCurateError
    from mmcurate.reeval.report import PROTOCOL
    from mmcurate.reeval.runner import claim_reeval_folder

    user = tmp_path / "mine"
    (user / "runs").mkdir(parents=True)
    (user / "results.csv").write_text("my,numbers\n")
    (user / "timings.json").write_text("{}")
    (user / "results.json").write_text('{"mine": true}')
    with pytest.raises(MMCurateError, match="not empty"):
        claim_reeval_folder(user, overwrite=False)
    assert (user / "results.csv").read_text() == "my,numbers\n"
    ours = tmp_path / "old-reeval"
    ours.mkdir()
    (ours / "results.json").write_text(json.dumps({"protocol": PROTOCOL, "runs": []}))
    claim_reeval_folder(ours, overwrite=False).release()  # an old reeval output is still recognised
