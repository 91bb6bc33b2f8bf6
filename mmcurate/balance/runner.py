"""``mmcurate balance``: a dataset whose discrepancy is uniform over bins, split and exported.

Reads the ingest output and its scores (which the score stage makes first, and says so, when they
are missing or stale: :func:`scoring_needs`), samples per bin and class, splits by bin and class with
groups kept whole, writes ``selection.parquet`` + a report, and writes the Hugging Face dataset with
its card through the library :mod:`mmcurate.export`. With ``--pool`` it samples several scored
ingest folders together (:mod:`mmcurate.balance.pools`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mmcurate import __version__
from mmcurate.balance.config import BalanceConfig
from mmcurate.balance.exclude import read_exclude
from mmcurate.balance.feasible import largest_feasible_bins, print_pool_table, small_eval_bins
from mmcurate.balance.needs import BinNeeds, bin_needs, print_needs
from mmcurate.balance.pools import open_pools, score_sources, scored_pools
from mmcurate.balance.report import chi_square_uniform, write_report
from mmcurate.balance.sampling import BinPlan, plan_bins, sample_within_bins
from mmcurate.common.console import info, summary_table, warn
from mmcurate.common.errors import MMCurateError
from mmcurate.common.stage import Need
from mmcurate.store import BalancedDir, IngestDir, Workdir
from mmcurate.store.bins import assign_bins, bin_label, bin_probability
from mmcurate.store.ownership import check_output_path
from mmcurate.store.pools import content_copies, refuse_copies
from mmcurate.store.schemas import SELECTION_SCHEMA
from mmcurate.store.scores_health import failed_checks, load_health
from mmcurate.store.splits import SPLITS, assign_splits, parse_ratios


@dataclass
class BalanceResult:
    out_dir: Path
    plan: BinPlan
    size: int
    split_sizes: dict[str, int]
    summary: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    needs: BinNeeds | None = None
    pool_bins: np.ndarray | None = None  # each pool sample's bin (-1: not eligible), for the plan table
    pool_labels: np.ndarray | None = None
    split_counts: dict[str, np.ndarray] | None = None  # split -> selected clips per bin


def scores_state(ingest: IngestDir, cfg: BalanceConfig) -> str:
    """``"fresh"``, ``"missing"`` or ``"stale: <why>"`` for the seed pool's scores; scores made by another
    scorer config are stale only when scorer options were given (options left at their defaults do not
    force a rescore of scores made with other settings)."""
    scoring = cfg.scoring
    want = (lambda on_gpu: scoring.resolved(on_gpu).content_hash()) if cfg.explicit_scoring else None
    return ingest.scores_state(want)


def scoring_needs(workdir: Workdir, cfg: BalanceConfig) -> list[Need]:
    """``mmcurate score`` on the seed pool first, when its scores are missing or stale (or ``--rescore``).

    Balance does not score itself: the orchestrator (:func:`mmcurate.stages.run_stage`, which the command
    and ``mmcurate run`` go through) runs the score stage from this need, so balance imports no stage. What
    balance would refuse anyway is refused here, before minutes of scoring: a missing pool, an output
    folder that is not a balanced output."""
    pools = open_pools(pool_paths(workdir, cfg))
    balanced = BalancedDir(cfg.out or workdir.balanced.path)
    check_output_path(balanced.path)
    if not cfg.dry_run:
        balanced.claim(cfg.overwrite, write=False)
    seed = next(iter(pools.values()))
    state = "stale: --rescore" if cfg.rescore else scores_state(seed, cfg)
    if state == "fresh":
        return []
    fields = {"ingest_dir": seed.path, "scorer_settings": cfg.scoring, "overwrite": cfg.rescore}
    return [Need("score", fields, f"balance: scores are {state}; running `mmcurate score` first")]


def check_pool_scores(pools: dict[str, IngestDir], cfg: BalanceConfig) -> None:
    """Every pool must hold fresh scores: the seed pool's are made first when needed (:func:`scoring_needs`);
    scoring another pool out-of-fold behind the user's back would replace candidate scores."""
    first, *others = pools.values()
    state = scores_state(first, cfg)
    if state != "fresh":
        raise MMCurateError(
            f"{first.path}: scores are {state}; run `mmcurate score` first (`mmcurate balance` does it for you)"
        )
    for ingest in pools.values():
        check_health(ingest, cfg)
    for ingest in others:
        state = ingest.scores_state()
        if state != "fresh":
            raise MMCurateError(
                f"{ingest.path}: scores are {state}; score this pool first (`mmcurate score {first.path} --candidates "
                f"{ingest.path}` for new clips, or `mmcurate score {ingest.path}`)"
            )


def check_health(ingest: IngestDir, cfg: BalanceConfig) -> None:
    """Scores that failed their self-check are refused (a one-line error naming the failed checks),
    unless ``--accept-weak-scores``; a plan (--dry-run) is shown with a warning instead."""
    health = (ingest.read_scores_meta() or {}).get("health") or {}
    if health.get("status") != "fail":
        return
    what = failed_checks(health)
    if cfg.accept_weak_scores:
        warn(
            f"balance: {ingest.path}: scores failed their self-check ({what}); balancing anyway (--accept-weak-scores)"
        )
        return
    if cfg.dry_run:
        warn(f"balance: {ingest.path}: scores failed their self-check ({what}); a real run refuses them")
        return
    raise MMCurateError(
        f"{ingest.path}: scores failed their self-check ({what}), so d is largely noise; see `mmcurate score`'s "
        "lines or scores.json 'health' (more clips per class, --max-epochs), or pass --accept-weak-scores"
    )


def plan_balance(
    ingest: IngestDir | dict[str, IngestDir], cfg: BalanceConfig
) -> tuple[pa.Table, np.ndarray, np.ndarray, BinPlan, dict[str, Any]]:
    """The pool, its bins, the selected row indices and the per-bin plan (no writing).

    ``ingest`` is one scored folder or several (pool name -> folder, the seed pool first); the
    pool table then has a ``pool`` column and the metadata is each pool's scores.json by name."""
    pool, bins, outside, uncertain, meta, copies = bin_pool(ingest, cfg)
    weak = both_weak_rows(pool) & (bins >= 0)
    if cfg.exclude_both_weak:
        bins = np.where(weak, -1, bins)
    edges = cfg.bin_edges()
    counts = np.bincount(bins[bins >= 0], minlength=len(edges) - 1)
    plan = plan_bins(counts, edges, cfg.per_bin, cfg.size, cfg.shortfall)
    if copies:
        plan.notes.append(f"{copies} byte-identical copies of other clips left out (--drop-duplicates)")
    if outside:
        plan.notes.append(f"{outside} samples lie outside the edges and are not eligible")
    if cfg.exclude_both_weak:
        plan.notes.append(f"{int(weak.sum())} samples left out: both scorers weak (--exclude-both-weak)")
    if cfg.max_discrepancy_std is not None:
        plan.notes.append(
            f"{int(uncertain.sum())} samples left out: discrepancy_std above {cfg.max_discrepancy_std:g} "
            "(bin uncertain)"
        )
    labels = np.asarray(pool.column("label").to_pylist(), dtype=object)
    chosen = sample_within_bins(bins, labels, plan.take, cfg.stratify == "label", cfg.seed)
    return pool, bins, chosen, plan, meta


def bin_pool(
    ingest: IngestDir | dict[str, IngestDir], cfg: BalanceConfig
) -> tuple[pa.Table, np.ndarray, int, np.ndarray, dict[str, Any], int]:
    """The scored pool, each sample's bin (-1: outside the edges or bin-uncertain), how many lie
    outside, which were left out as uncertain, the scores' metadata, and how many byte-identical
    copies were left out (``--drop-duplicates``; without it copies are refused)."""
    if isinstance(ingest, IngestDir):
        pool, meta = ingest.scored_pool()
    else:
        pool, metas = scored_pools(ingest)
        meta = next(iter(metas.values())) if len(metas) == 1 else {"pools": metas}
    pool, copies = _without_copies(pool, ingest, cfg.drop_duplicates)
    pool = without_excluded(pool, cfg)
    d = pool.column("discrepancy").to_numpy()
    bins = assign_bins(d, cfg.bin_edges())
    outside = int((bins < 0).sum())
    uncertain = uncertain_rows(pool, cfg.max_discrepancy_std) & (bins >= 0)
    return pool, np.where(uncertain, -1, bins), outside, uncertain, meta, copies


def _without_copies(pool: pa.Table, ingest: IngestDir | dict[str, IngestDir], drop: bool) -> tuple[pa.Table, int]:
    """The pool without clips whose bytes repeat an earlier clip's under another name, and how many went;
    a one-line refusal naming a pair unless ``drop`` (:mod:`mmcurate.store.pools`)."""
    folders = {None: ingest} if isinstance(ingest, IngestDir) else ingest
    copies = content_copies(folders)
    if not copies:
        return pool, 0
    if not drop:
        refuse_copies(folders, [c for c in copies if c.pool != c.original_pool], "--drop-duplicates")
        c = copies[0]  # copies inside one pool: ingest reported them; say it again where splits are drawn
        warn(
            f"{len(copies)} clip(s) of {folders[c.pool].path} have the same bytes as another clip of it (e.g. "
            f"{c.sample_id!r} and {c.original_id!r}); they may land in different splits: --drop-duplicates keeps one"
        )
        return pool, 0
    gone = {(c.pool, c.sample_id) for c in copies}
    names = pool.column("pool").to_pylist() if "pool" in pool.column_names else [None] * pool.num_rows
    keep = [(name, sid) not in gone for name, sid in zip(names, pool.column("sample_id").to_pylist(), strict=True)]
    info(f"balance: {len(copies)} byte-identical copies of other clips left out (--drop-duplicates)")
    return pool.filter(pa.array(keep, pa.bool_())), len(copies)


def without_excluded(pool: pa.Table, cfg: BalanceConfig) -> pa.Table:
    """The pool without the samples ``--exclude FILE`` lists (an unknown id there is an error)."""
    if cfg.exclude is None:
        return pool
    ids = pool.column("sample_id").to_pylist()
    drop = set(read_exclude(cfg.exclude, ids))
    keep = np.asarray([sid not in drop for sid in ids], dtype=bool)
    return pool.filter(pa.array(keep))


def choose_bins(pools: dict[str, IngestDir], cfg: BalanceConfig) -> BalanceConfig:
    """``cfg``, or the same with fewer equal-width bins when one of its bins holds no samples.

    Only when the target is left to balance (no --per-bin, --size or --edges): the default target is
    "the largest count every bin can meet", and with an empty bin that is nothing. The largest bin
    count whose bins all hold samples is taken instead, said in one line and recorded
    (``bins_requested`` in balance.json and on the card). With an explicit target or edges balance
    stops instead and names what works (:func:`explain_infeasible`)."""
    if cfg.per_bin is not None or cfg.size is not None or cfg.edges is not None:
        return cfg
    pool, bins, _, _, _, _ = bin_pool(pools, cfg)
    counts = np.bincount(bins[bins >= 0], minlength=cfg.bins)
    if counts.min() > 0:
        return cfg
    eligible = pool.column("discrepancy").to_numpy()[~uncertain_rows(pool, cfg.max_discrepancy_std)]
    feasible = largest_feasible_bins(eligible, cfg.bins)
    if feasible is None:
        return cfg
    empty = ", ".join(str(int(b)) for b in np.flatnonzero(counts == 0))
    info(
        f"balance: bin(s) {empty} of --bins {cfg.bins} hold no samples; using --bins {feasible.bins} instead (the "
        f"most equal-width bins that all hold 10 or more, {feasible.per_bin} per bin); to keep {cfg.bins} bins give "
        f"--per-bin N --shortfall best-effort"
    )
    return dataclasses.replace(cfg, bins=feasible.bins, bins_requested=cfg.bins)


def explain_infeasible(pools: dict[str, IngestDir], cfg: BalanceConfig, err: MMCurateError) -> MMCurateError:
    """Print the pool table of a plan that cannot be met, and the error with the settings that work
    (the largest feasible --bins and its --per-bin) when a bin is empty."""
    pool, bins, _, _, _, _ = bin_pool(pools, cfg)
    labels = np.asarray(pool.column("label").to_pylist(), dtype=object)
    edges = cfg.bin_edges()
    print_pool_table("balance plan: cannot be met (pool per bin)", edges, bins, labels)
    counts = np.bincount(bins[bins >= 0], minlength=len(edges) - 1)
    if counts.min() > 0:
        return err
    eligible = pool.column("discrepancy").to_numpy()[bins >= 0]
    feasible = largest_feasible_bins(eligible, len(edges) - 1)
    if feasible is None:
        return MMCurateError(f"{err}; no sample lies inside the edges")
    return MMCurateError(f"{err}. Largest that works: `mmcurate balance {feasible.flags()}`")


def pool_needs(pools: dict[str, IngestDir], cfg: BalanceConfig) -> BinNeeds:
    """Per bin and class, what the seed pool (the first) lacks to reach ``--per-bin`` and what the
    other pools hold (:mod:`mmcurate.balance.needs`)."""
    if cfg.per_bin is None:
        raise MMCurateError("the needs table needs a target: give --per-bin N")
    pool, bins, _, _, _, _ = bin_pool(pools, cfg)
    seed_name = next(iter(pools))
    labels = np.asarray(pool.column("label").to_pylist(), dtype=object)
    candidate = np.asarray(pool.column("pool").to_pylist(), dtype=object) != seed_name
    return bin_needs(
        bins, labels, candidate, next(iter(pools.values())).read_classes(), len(cfg.bin_edges()) - 1, cfg.per_bin
    )


def both_weak_rows(pool: pa.Table) -> np.ndarray:
    """Rows the scores flag ``both_weak`` (none for scores without the column, e.g. older ones)."""
    if "both_weak" not in pool.column_names:
        return np.zeros(pool.num_rows, dtype=bool)
    return np.asarray(pool.column("both_weak").fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def uncertain_rows(pool: pa.Table, max_std: float | None) -> np.ndarray:
    """Rows whose discrepancy_std exceeds ``max_std`` (none when ``max_std`` is None)."""
    if max_std is None:
        return np.zeros(pool.num_rows, dtype=bool)
    if "discrepancy_std" not in pool.column_names or pool.column("discrepancy_std").null_count:
        raise MMCurateError(
            "--max-discrepancy-std needs per-sample discrepancy_std, which these scores do not have (imported "
            "or older scores); rerun `mmcurate score`, or leave the option out"
        )
    return pool.column("discrepancy_std").to_numpy() > max_std


def pool_paths(workdir: Workdir, cfg: BalanceConfig) -> list[Path]:
    """The pools to balance, seed pool first: INGEST_DIR then every --pool; else the work dir's ingest."""
    paths = ([cfg.ingest_dir] if cfg.ingest_dir else []) + list(cfg.pool)
    return paths or [workdir.ingest.path]


def run_balance(workdir: Workdir, cfg: BalanceConfig) -> BalanceResult:
    """The ``mmcurate balance`` stage: select, split, report, export (the scores are made first by
    :func:`scoring_needs` when the stage is run through :func:`mmcurate.stages.run_stage`).

    The output folder is checked (a balanced output, empty, or ``--overwrite``) and locked before
    anything is written; a dry run only reads.
    """
    pools = open_pools(pool_paths(workdir, cfg))
    balanced = BalancedDir(cfg.out or workdir.balanced.path)
    check_output_path(balanced.path)
    if cfg.dry_run:
        return _run_balance(pools, balanced, cfg)
    lock = balanced.claim_locked(cfg.overwrite)
    try:
        return _run_balance(pools, balanced, cfg)
    finally:
        lock.release()


def _run_balance(pools: dict[str, IngestDir], balanced: BalancedDir, cfg: BalanceConfig) -> BalanceResult:
    ingest = next(iter(pools.values()))  # the seed pool: its ingest config describes the source on the card
    check_pool_scores(pools, cfg)
    ratios = parse_ratios(cfg.split)
    cfg = choose_bins(pools, cfg)
    needs = None
    if cfg.dry_run and cfg.per_bin is not None:  # before planning: a target the pools cannot meet stops the plan
        needs = pool_needs(pools, cfg)
        print_needs(needs, cfg.bin_edges(), len(pools) > 1)
    try:
        pool, bins, chosen, plan, _ = plan_balance(pools, cfg)
    except MMCurateError as err:
        raise explain_infeasible(pools, cfg, err) from None
    if cfg.bins_requested:
        plan.notes.insert(
            0, f"--bins {cfg.bins_requested} asked, but some of those bins hold no samples: used --bins {cfg.bins}"
        )
    if cfg.exclude is not None:
        n_excluded = _exclude_summary(cfg, pools)["excluded"]
        plan.notes.append(f"{n_excluded} samples left out by --exclude {cfg.exclude.name}")
    metas = {name: ingest_dir.read_scores_meta() for name, ingest_dir in pools.items()}
    meta = metas[next(iter(pools))]
    labels = np.asarray(pool.column("label").to_pylist(), dtype=object)
    groups_all = pool.column("group").to_pylist()
    use_groups = not cfg.ignore_groups and any(g is not None for g in groups_all)
    sel_groups = [groups_all[i] for i in chosen] if use_groups else None
    splits = assign_splits(bins[chosen], labels[chosen], sel_groups, ratios, cfg.seed)
    split_sizes = {s: int((splits == s).sum()) for s in SPLITS}
    n_bins = len(plan.edges) - 1
    split_counts = {s: np.bincount(bins[chosen][splits == s], minlength=n_bins) for s in SPLITS}
    scorer_id = pool.column("scorer_id")[0].as_py() if pool.num_rows else None
    d_all = pool.column("discrepancy").to_numpy()
    summary = {
        "pool_size": int(pool.num_rows),
        "size": int(len(chosen)),
        "policy": plan.policy,
        "targets": [int(x) for x in plan.targets],
        "taken": [int(x) for x in plan.take],
        "shortfall": [int(x) for x in plan.shortfall],
        "pool_per_bin": [int(x) for x in plan.pool],
        "edges": [float(x) for x in plan.edges],
        "seed": cfg.seed,
        "scorer_id": scorer_id,
        "grouped": use_groups,
        "split_sizes": split_sizes,
        "split_fractions": {s: round(n / max(1, len(chosen)), 4) for s, n in split_sizes.items()},
        "chi_square_before": chi_square_uniform(plan.pool),
        "chi_square_after": chi_square_uniform(np.bincount(bins[chosen], minlength=len(plan.edges) - 1)),
        "notes": plan.notes,
        "split_bins": {s: [int(x) for x in split_counts[s]] for s in SPLITS},
        **({"bins_requested": cfg.bins_requested} if cfg.bins_requested else {}),
        **_exclude_summary(cfg, pools),
        **_uncertainty_summary(pool, chosen, plan.edges, cfg.max_discrepancy_std),
        "both_weak_per_bin": np.bincount(
            bins[chosen][both_weak_rows(pool)[chosen]], minlength=len(plan.edges) - 1
        ).tolist(),
        "both_weak_excluded": cfg.exclude_both_weak,
        **_pools_summary(pools, pool, chosen, metas),
    }
    _warn_split_drift(summary, ratios)
    small = small_eval_bins(split_counts) if len(chosen) else None
    if small:
        summary["notes"].append(small)
    result = BalanceResult(
        balanced.path, plan, len(chosen), split_sizes, summary, cfg.dry_run, needs, bins, labels, split_counts
    )
    print_plan(result)
    if cfg.dry_run:
        if needs is not None:
            summary["needs"] = needs.to_dict()
        info("balance: --dry-run, nothing written")
        return result
    if len(chosen) == 0:
        raise MMCurateError("the balanced selection is empty; nothing to export")

    balanced.path.mkdir(parents=True, exist_ok=True)
    balanced.invalidate_export()  # the old export no longer matches what follows, until the new marker
    sel = pool.take(pa.array(chosen))
    selection = pa.Table.from_pydict(
        {
            "sample_id": sel.column("sample_id"),
            "label": sel.column("label"),
            "bin": pa.array(bins[chosen].astype(np.int32)),
            "split": pa.array(splits.tolist(), pa.string()),
            "p_audio": sel.column("p_audio"),
            "p_visual": sel.column("p_visual"),
            "discrepancy": sel.column("discrepancy"),
            "group": sel.column("group"),
            "pool": sel.column("pool"),
        },
        schema=SELECTION_SCHEMA,
    )
    balanced.write_selection(selection)
    write_report(
        balanced.report_dir,
        plan.edges,
        d_all,
        d_all[chosen],
        bins,
        bins[chosen],
        labels,
        labels[chosen],
        splits,
        summary,
    )
    provenance = _provenance(ingest, cfg, summary, meta)
    pool_dirs = {name: str(p.path.resolve()) for name, p in pools.items()}
    balanced.write_meta(
        {
            "config": cfg.to_dict(),
            "ingest_dir": str(ingest.path.resolve()),
            **({"pool_dirs": pool_dirs} if len(pools) > 1 else {}),
            **provenance,
            "summary": summary,
            # readers check that the ingest they join the selection with is still the data sampled here
            BalancedDir.INGEST_FINGERPRINTS: {name: p.fingerprint() for name, p in pools.items()},
        }
    )
    from mmcurate.export import export_balanced

    export_balanced(
        ingest.path if len(pools) == 1 else {name: p.path for name, p in pools.items()},
        balanced.selection_path,
        balanced.path,
        provenance,
        max_shard_size=cfg.max_shard_size,
        include_features=cfg.include_features,
    )
    return result


def _exclude_summary(cfg: BalanceConfig, pools: dict[str, IngestDir]) -> dict[str, Any]:
    """How many and which samples ``--exclude`` left out (the ids go to balance.json and the card's JSON)."""
    if cfg.exclude is None:
        return {}
    pool, _ = scored_pools(pools)
    ids = read_exclude(cfg.exclude, pool.column("sample_id").to_pylist())
    return {"excluded": len(ids), "exclude_file": cfg.exclude.name, "excluded_ids": ids}


def _pools_summary(
    pools: dict[str, IngestDir], pool: pa.Table, chosen: np.ndarray, metas: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Per pool: how its scores were made, its size and how many samples it gave; only when the
    selection is not simply one folder's out-of-fold scores (the card then says where scores came from)."""
    sources = score_sources(metas)
    if len(pools) == 1 and all(s == "oof" for s in sources.values()):
        return {}
    names = np.asarray(pool.column("pool").to_pylist(), dtype=object)
    return {
        "pools": {
            name: {
                "scores": sources[name],
                "out_of_fold": sources[name] == "oof",
                "pool_size": int((names == name).sum()),
                "selected": int((names[chosen] == name).sum()),
                "scorer_id": metas[name].get("scorer_id"),
            }
            for name in pools
        }
    }


def _uncertainty_summary(
    pool: pa.Table, chosen: np.ndarray, edges: np.ndarray, max_std: float | None
) -> dict[str, Any]:
    """What the uncertainty filter left out, and the selection's expected share in its right bin
    (bin probabilities recomputed for these edges)."""
    if "discrepancy_std" not in pool.column_names or pool.column("discrepancy_std").null_count:
        return {}
    std = pool.column("discrepancy_std").to_numpy()
    p = bin_probability(pool.column("discrepancy").to_numpy()[chosen], std[chosen], edges)
    out: dict[str, Any] = {"selection_mean_bin_probability": round(float(np.nanmean(p)), 4) if len(chosen) else None}
    if max_std is not None:
        out["max_discrepancy_std"] = max_std
        out["uncertain_left_out"] = int(uncertain_rows(pool, max_std).sum())
    return out


def _provenance(
    ingest: IngestDir, cfg: BalanceConfig, summary: dict[str, Any], score_meta: dict[str, Any]
) -> dict[str, Any]:
    ingest_cfg = ingest.read_config()
    prov: dict[str, Any] = {
        "scorer_id": summary["scorer_id"],
        "scorer": _without_timings(
            {k: score_meta.get(k) for k in ("source", "config", "device", "metrics") if k in score_meta}
        ),
        "bin_edges": summary["edges"],
        "targets": summary["taken"],
        "seed": cfg.seed,
        "balance_config": cfg.to_dict(),
        "toolkit_version": __version__,
        "ingest_config": ingest_cfg.get("identity", {}).get("config"),
        "source": {**(ingest_cfg.get("source") or {}), **cfg.extra},
    }
    health = load_health(ingest.path)
    if health is not None:
        prov["scorer_health"] = health
    for key in (
        "max_discrepancy_std",
        "uncertain_left_out",
        "selection_mean_bin_probability",
        "pools",
        "excluded",
        "exclude_file",
        "excluded_ids",
        "bins_requested",
    ):
        if key in summary:
            prov[key] = summary[key]
    if cfg.pretty_name:
        prov["pretty_name"] = cfg.pretty_name
    if summary["notes"]:
        prov["notes"] = "; ".join(summary["notes"])
    return prov


#: how long a scorer job took, and whether it was resumed: facts of one run, not of the data
_RUN_FACTS = frozenset({"seconds", "resumed", "elapsed_seconds", "whole_set_seconds"})


def _without_timings(value: Any) -> Any:
    """``value`` without wall times and resume flags, so that the card and balance.json depend only on
    the data, the settings and the seed (rescoring the same data gives the same card)."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in _RUN_FACTS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _warn_split_drift(summary: dict[str, Any], ratios: tuple[float, float, float]) -> None:
    fr = summary["split_fractions"]
    off = [f"{s} {fr[s]:.0%} (asked {r:.0%})" for s, r in zip(SPLITS, ratios) if abs(fr[s] - r) > 0.05]
    if off:
        note = "split shares differ from the request because groups cannot be divided: " + ", ".join(off)
        summary["notes"].append(note)


def print_plan(result: BalanceResult) -> None:
    """The plan table (one row per bin: pool, classes, target, take, shortfall, clips per split) and the
    split and uniformity summary."""
    plan = result.plan
    title = f"balance plan ({plan.policy}): {result.size} samples from {int(plan.pool.sum())}"
    if result.pool_bins is not None and result.pool_labels is not None:
        print_pool_table(
            title, plan.edges, result.pool_bins, result.pool_labels, plan.targets, plan.take, result.split_counts
        )
    else:
        rows = [
            [b, bin_label(plan.edges, b), int(plan.pool[b]), int(plan.targets[b]), int(plan.take[b])]
            for b in range(len(plan.pool))
        ]
        summary_table(title, ["bin", "range", "pool", "target", "take"], rows)
    s = result.summary
    summary_table(
        "splits and uniformity",
        ["", "value"],
        [
            ["train / val / test", " / ".join(str(result.split_sizes[k]) for k in SPLITS)],
            ["groups kept whole", s["grouped"]],
            [
                "chi-square vs uniform, before",
                f"{s['chi_square_before']['statistic']} (p={_p(s['chi_square_before']['p_value'])})",
            ],
            [
                "chi-square vs uniform, after",
                f"{s['chi_square_after']['statistic']} (p={_p(s['chi_square_after']['p_value'])})",
            ],
        ],
    )
    for note in plan.notes:
        (warn if "fewer than" in note else info)(f"balance: {note}")


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3g}"
