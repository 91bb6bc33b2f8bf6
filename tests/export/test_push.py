"""``mmcurate push`` against a real HTTP Hub-compatible server (tests/hub_server.py) on 127.0.0.1.

End-to-end tests run the CLI in a subprocess whose environment points ``HF_ENDPOINT`` at the
server before ``huggingface_hub``/``datasets`` import, exactly as a user would; the server's
request log shows what was sent. Nothing here talks to the public Hub.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pyarrow.ipc as ipc
import pytest
from _fixtures_ingest import fixture_provenance, make_selection
from _hub_fixtures import (
    ExportFixture,
    build_export,
    error_lines,
    run_mmcurate,
    run_python,
)
from hub_server import VALID_TOKEN, HubServer, hub_env

from mmcurate.common.errors import MMCurateError
from mmcurate.common.hashing import file_sha256
from mmcurate.export import export_balanced, load_balanced
from mmcurate.push import push_dataset, validate_repo_id
from mmcurate.push.files import collect_local_files, plan_push
from mmcurate.push.secrets import mask_token


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> ExportFixture:
    return build_export(tmp_path_factory.mktemp("push-export"))


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    # A small page size makes every tree listing paginate, as large repos do on the real Hub.
    with HubServer(tmp_path_factory.mktemp("hub"), page_size=3) as server:
        yield server


@pytest.fixture()
def env(hub: HubServer, tmp_path: Path, exported: ExportFixture) -> dict[str, str]:
    return {**hub_env(hub.url, tmp_path), "MMCURATE_WORKDIR": str(exported.workdir)}


@pytest.fixture(autouse=True)
def _hub_client_for_in_process_pushes(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process pushes pass the endpoint explicitly; also make sure offline mode and Xet are off
    for them (constants are read at import, so patch them as datasets' own hub fixtures do)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)


def _assert_clean_failure(proc, *, secret: str = VALID_TOKEN) -> str:
    """Exit 2, exactly one one-line ``error:`` message, no traceback, the secret nowhere."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    errors = error_lines(proc.stderr)
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert secret not in proc.stdout and secret not in proc.stderr
    return errors[0]


def _local_hashes(folder: Path) -> dict[str, str]:
    config = [folder / "mmcurate_config.json"] if (folder / "mmcurate_config.json").is_file() else []
    files = [folder / "README.md", *config, *sorted((folder / "data").glob("*.parquet"))]
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in files}


def _remote_hashes(hub: HubServer, repo_id: str, revision: str = "main") -> dict[str, str]:
    import hashlib

    out = {}
    for path in hub.state.head_files("dataset", repo_id, revision):
        if path == ".gitattributes":
            continue
        out[path] = hashlib.sha256(hub.state.file_bytes("dataset", repo_id, path, revision)).hexdigest()
    return out


_LOAD_SCRIPT = r"""
import json, sys
from pathlib import Path
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import datasets
from huggingface_hub import HfFileSystem

repo_id, out = sys.argv[1], Path(sys.argv[2])
dsd = datasets.load_dataset(repo_id)
for split, ds in dsd.items():
    table = ds.with_format("arrow")[:]
    with ipc.new_file(out / f"{split}.arrow", table.schema) as w:
        w.write_table(table)
features = {split: ds.features.to_dict() for split, ds in dsd.items()}
# Read one shard's footer through HfFileSystem: pyarrow seeks, so this goes through Range requests.
fs = HfFileSystem()
shard = sorted(fs.glob(f"datasets/{repo_id}/data/train-*.parquet"))[0]
with fs.open(shard, "rb", block_size=4096) as fh:
    meta = pq.ParquetFile(fh).metadata
(out / "info.json").write_text(json.dumps({"features": features, "footer_rows": meta.num_rows, "shard": shard}))
"""


@pytest.mark.slow
def test_push_then_load_dataset_returns_the_export(
    hub: HubServer, env: dict[str, str], exported: ExportFixture, tmp_path: Path
) -> None:
    hub.state.clear_log()
    proc = run_mmcurate(["push", "--repo-id", "testorg/tiny", "--files-per-commit", "2"], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("/datasets/testorg/tiny")
    assert VALID_TOKEN not in proc.stdout + proc.stderr
    assert _remote_hashes(hub, "testorg/tiny") == _local_hashes(exported.balanced_dir)
    commits = hub.state.committed_paths()
    assert commits[-1] == ["README.md", "mmcurate_config.json"], "the card and its configuration are committed last"
    assert all(len(c) <= 2 for c in commits[:-1]) and len(commits) == 4  # 5 shards in batches of 2, then the card
    assert not hub.state.requests(pattern="xet")

    out = tmp_path / "loaded"
    out.mkdir()
    load = run_python(_LOAD_SCRIPT, ["testorg/tiny", str(out)], env)
    assert load.returncode == 0, load.stderr[-3000:]
    local = load_balanced(exported.balanced_dir, "hf", decode_audio=False)
    info = json.loads((out / "info.json").read_text())
    assert sorted(info["features"]) == sorted(local)
    for split, ds in local.items():
        remote = ipc.open_file(out / f"{split}.arrow").read_all()
        assert remote.equals(ds.with_format("arrow")[:]), f"{split}: rows from the server differ from the export"
        assert info["features"][split]["label"]["names"] == ds.features["label"].names
        assert info["features"][split]["audio"]["_type"] == "Audio"
    assert info["footer_rows"] >= 1
    assert [r for r in hub.state.requests("GET", r"/resolve/") if r.status == 206], "range requests were served"
    assert [r for r in hub.state.requests("GET", r"/tree/") if "cursor=" in r.query], "tree listings paginated"


@pytest.mark.slow
def test_rerun_uploads_nothing_and_dry_run_changes_nothing(hub: HubServer, env: dict[str, str]) -> None:
    first = run_mmcurate(["push", "--repo-id", "testorg/again"], env)
    assert first.returncode == 0, first.stderr
    hub.state.clear_log()
    dry = run_mmcurate(["push", "--repo-id", "testorg/again", "--dry-run"], env)
    assert dry.returncode == 0, dry.stderr
    assert "skip" in dry.stdout and "README.md" in dry.stdout and "upload " not in dry.stdout
    again = run_mmcurate(["push", "--repo-id", "testorg/again"], env)
    assert again.returncode == 0, again.stderr
    assert "nothing to upload" in again.stderr
    writes = [r for r in hub.state.log if r.method in ("POST", "PUT") and r.path != "/api/validate-yaml"]
    assert writes == [], [(r.method, r.path) for r in writes]


def test_dry_run_lists_files_with_sizes_and_touches_nothing(
    hub: HubServer, env: dict[str, str], exported: ExportFixture
) -> None:
    hub.state.clear_log()
    proc = run_mmcurate(["push", "--repo-id", "testorg/never-created", "--dry-run"], env)
    assert proc.returncode == 0, proc.stderr
    assert "does not exist yet" in proc.stdout
    for rel in _local_hashes(exported.balanced_dir):
        line = next(line for line in proc.stdout.splitlines() if line.rstrip().endswith(rel))
        assert line.split()[0] == "upload" and line.split()[2] in ("KB", "B")
    assert all(r.method == "GET" for r in hub.state.log), [(r.method, r.path) for r in hub.state.log]
    assert ("dataset", "testorg/never-created") not in hub.state.repos


@pytest.mark.slow
def test_push_cut_off_mid_way_resumes_without_reuploading(hub: HubServer, exported: ExportFixture) -> None:
    """The server refuses the 2nd commit; the rerun uploads only what was never uploaded and
    commits only what was never committed."""
    repo = "testorg/resume"
    hub.state.clear_log()
    hub.state.fail_next("commit", nth=2, status=500, message="injected: storage backend unavailable")
    with pytest.raises(MMCurateError) as info:
        push_dataset(exported.balanced_dir, repo, token=VALID_TOKEN, endpoint=hub.url, files_per_commit=2)
    message = str(info.value)
    assert "stopped after 1 of 4 commits" in message and "rerun" in message and "\n" not in message
    first_uploads = hub.state.uploaded_oids()
    first_commits = hub.state.committed_paths()
    assert len(first_commits) == 1 and len(first_uploads) == 4  # batch 2 was uploaded, its commit refused
    assert set(_remote_hashes(hub, repo)) == set(first_commits[0])

    hub.state.clear_log()
    result = push_dataset(exported.balanced_dir, repo, token=VALID_TOKEN, endpoint=hub.url, files_per_commit=2)
    assert {f.rel for f in result.plan.skip} == set(first_commits[0])
    second_uploads = hub.state.uploaded_oids()
    assert not set(second_uploads) & set(first_uploads), "objects already on the server were sent again"
    local = _local_hashes(exported.balanced_dir)
    parquet_oids = {h for rel, h in local.items() if rel.endswith(".parquet")}
    assert set(first_uploads) | set(second_uploads) == parquet_oids  # each shard uploaded exactly once overall
    assert len(first_uploads) + len(second_uploads) == len(parquet_oids)
    assert not any(set(c) & set(first_commits[0]) for c in hub.state.committed_paths())
    assert _remote_hashes(hub, repo) == local


def test_new_export_replaces_stale_shards_and_keeps_unchanged_ones(
    hub: HubServer, exported: ExportFixture, tmp_path: Path
) -> None:
    repo = "testorg/evolving"
    push_dataset(exported.balanced_dir, repo, token=VALID_TOKEN, endpoint=hub.url)
    other = tmp_path / "balanced"
    export_balanced(
        exported.ingest_dir, exported.selection, other, fixture_provenance(), max_shard_size="10MB", show_summary=False
    )
    hub.state.clear_log()
    result = push_dataset(other, repo, token=VALID_TOKEN, endpoint=hub.url)
    assert sorted(result.plan.delete) == [f"data/train-0000{i}-of-00003.parquet" for i in range(3)]
    # validation and test shards did not change (same rows, one shard each): not re-sent
    assert {f.rel for f in result.plan.skip} == {
        "data/test-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet",
        "mmcurate_config.json",  # the same provenance: the same configuration
    }
    assert {f.rel for f in result.plan.upload} == {"README.md", "data/train-00000-of-00001.parquet"}
    assert _remote_hashes(hub, repo) == _local_hashes(other)
    last = hub.state.requests("POST", r"/commit/")[-1]
    assert last.detail["ops"].count("deletedFile") == 3 and "README.md" in last.detail["paths"]


@pytest.mark.slow
def test_private_and_branch(hub: HubServer, env: dict[str, str], exported: ExportFixture) -> None:
    proc = run_mmcurate(["push", "--repo-id", "testorg/secret", "--private"], env)
    assert proc.returncode == 0, proc.stderr
    assert hub.state.repos[("dataset", "testorg/secret")].private is True
    missing = run_mmcurate(["push", "--repo-id", "testorg/secret", "--revision", "dev"], env)
    assert "revision 'dev' is not a branch of dataset repo testorg/secret" in _assert_clean_failure(missing)
    from huggingface_hub import HfApi

    HfApi(endpoint=hub.url, token=VALID_TOKEN).create_branch("testorg/secret", branch="dev", repo_type="dataset")
    work = exported.workdir.parent / "branch-copy"  # an explicit DATASET_DIR, not the work directory
    shutil.copytree(exported.balanced_dir, work, dirs_exist_ok=True)
    ok = run_mmcurate(
        ["push", str(work), "--repo-id", "testorg/secret", "--revision", "dev", "--commit-message", "to dev"], env
    )
    assert ok.returncode == 0, ok.stderr
    assert "/tree/dev" in ok.stdout
    assert "to dev" not in [r.detail.get("title") for r in hub.state.requests("POST", r"/commit/main$")]
    assert (
        hub.state.head_files("dataset", "testorg/secret", "dev").keys()
        == hub.state.head_files("dataset", "testorg/secret").keys()
    )


def test_repo_id_in_the_wrong_form_fails_before_any_network(hub: HubServer, env: dict[str, str]) -> None:
    hub.state.clear_log()
    proc = run_mmcurate(["push", "--repo-id", "just-a-name"], env)
    assert "is not a Hub repository id" in _assert_clean_failure(proc)
    assert hub.state.log == []
    for bad in ("a/b/c", "-org/name", "org/na me", "org/name-", "org--x/name", "org/" + "n" * 100, ""):
        with pytest.raises(MMCurateError):
            validate_repo_id(bad)
    for good in ("testorg/tiny", "A1/b.c_d-e", "org/v2.0"):
        assert validate_repo_id(good) == good


def test_missing_and_bad_tokens(hub: HubServer, env: dict[str, str]) -> None:
    no_token = {k: v for k, v in env.items() if k != "HF_TOKEN"}
    proc = run_mmcurate(["push", "--repo-id", "testorg/tok"], no_token)
    assert "no Hugging Face token found" in _assert_clean_failure(proc)
    # the login cache (what `hf auth login` writes) is used when HF_TOKEN is unset
    Path(no_token["HF_TOKEN_PATH"]).parent.mkdir(parents=True, exist_ok=True)
    Path(no_token["HF_TOKEN_PATH"]).write_text(VALID_TOKEN)
    cached = run_mmcurate(["push", "--repo-id", "testorg/tok", "--dry-run"], no_token)
    assert cached.returncode == 0, cached.stderr
    assert "does not exist yet" in cached.stdout and VALID_TOKEN not in cached.stdout + cached.stderr
    assert hub.state.requests("GET", r"^/api/whoami-v2$")[-1].status == 200
    Path(no_token["HF_TOKEN_PATH"]).unlink()

    bad = "hf_ThisTokenIsWrong0123456789abcdef"
    for args, e in ((["--token", bad], no_token), ([], {**env, "HF_TOKEN": bad})):
        proc = run_mmcurate(["push", "--repo-id", "testorg/tok", *args], e)
        assert "rejected the token (401 Unauthorized)" in _assert_clean_failure(proc, secret=bad)
    assert ("dataset", "testorg/tok") not in hub.state.repos


def test_token_is_masked_even_when_the_server_echoes_it(hub: HubServer, env: dict[str, str]) -> None:
    hub.state.echo_auth_in_errors = True
    hub.state.fail_next("create", status=400, message="bad request")
    try:
        proc = run_mmcurate(["push", "--repo-id", "testorg/echo"], env)
    finally:
        hub.state.echo_auth_in_errors = False
    line = _assert_clean_failure(proc)
    assert "Authorization: Bearer hf_***" in line  # the echoed header is there, masked
    assert mask_token(f"x {VALID_TOKEN} (Bearer abc)", VALID_TOKEN) == "x hf_*** (Bearer hf_***)"


@pytest.mark.slow
def test_unreachable_endpoints(env: dict[str, str]) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    refused = run_mmcurate(
        ["push", "--repo-id", "testorg/x"], {**env, "HF_ENDPOINT": f"http://127.0.0.1:{closed_port}"}
    )
    assert "cannot reach the Hub at" in _assert_clean_failure(refused) and "connection refused" in refused.stderr
    dns = run_mmcurate(
        ["push", "--repo-id", "testorg/x"], {**env, "HF_ENDPOINT": "http://mmcurate-no-such-host.invalid"}
    )
    assert "(host name not found)" in _assert_clean_failure(dns)


@pytest.mark.slow
def test_xet_only_client_gets_a_hint_then_no_xet_works(hub: HubServer, env: dict[str, str]) -> None:
    xet_env = {k: v for k, v in env.items() if k != "HF_HUB_DISABLE_XET"}
    proc = run_mmcurate(["push", "--repo-id", "testorg/xet"], xet_env)
    assert "does not offer Xet storage" in _assert_clean_failure(proc) and "--no-xet" in proc.stderr
    ok = run_mmcurate(["push", "--repo-id", "testorg/xet", "--no-xet"], xet_env)
    assert ok.returncode == 0, ok.stderr


def test_unfinished_export_is_refused_before_any_network(
    hub: HubServer, env: dict[str, str], exported: ExportFixture, tmp_path: Path
) -> None:
    copy = tmp_path / "balanced"
    shutil.copytree(exported.balanced_dir, copy)
    (copy / "export.json").unlink()  # what a killed export leaves during the swap
    hub.state.clear_log()
    proc = run_mmcurate(["push", str(copy), "--repo-id", "testorg/half"], env)
    assert "did not finish" in _assert_clean_failure(proc)
    assert hub.state.log == []
    with pytest.raises(MMCurateError, match="dataset directory not found"):
        collect_local_files(tmp_path / "nowhere")


def test_plan_compares_content_not_names(exported: ExportFixture) -> None:
    from mmcurate.push.files import RemoteFile

    local = collect_local_files(exported.balanced_dir)
    card = next(f for f in local if f.rel == "README.md")
    shard = next(f for f in local if f.rel.endswith(".parquet"))
    remote = {
        card.rel: RemoteFile(card.rel, card.size, None, card.git_oid),  # same card
        shard.rel: RemoteFile(shard.rel, shard.size, "0" * 64, "x"),  # same name, other content
        "data/old-00000-of-00001.parquet": RemoteFile("data/old-00000-of-00001.parquet", 1, "1" * 64, "y"),
        ".gitattributes": RemoteFile(".gitattributes", 10, None, "z"),
    }
    plan = plan_push(local, remote)
    assert [f.rel for f in plan.skip] == ["README.md"]
    assert shard in plan.upload
    assert plan.delete == ["data/old-00000-of-00001.parquet"]  # .gitattributes is never touched


def test_selection_changes_reach_the_hub(hub: HubServer, exported: ExportFixture, tmp_path: Path) -> None:
    """A smaller selection changes every split's shards and the card: all of them go up."""
    sel = make_selection(exported.ingest_dir, drop_every=5)
    out = tmp_path / "balanced"
    export_balanced(exported.ingest_dir, sel, out, fixture_provenance(), max_shard_size="10MB", show_summary=False)
    push_dataset(exported.balanced_dir, "testorg/changes", token=VALID_TOKEN, endpoint=hub.url)
    result = push_dataset(out, "testorg/changes", token=VALID_TOKEN, endpoint=hub.url)
    assert {f.rel for f in result.plan.skip} == {"mmcurate_config.json"}  # the fixture's provenance is the same
    assert _remote_hashes(hub, "testorg/changes") == _local_hashes(out)
    assert sum(load_balanced(out, "hf").num_rows.values()) == sel.num_rows


def test_help_explains_every_option() -> None:
    import click
    from click.testing import CliRunner

    from mmcurate.push.cli import push

    text = CliRunner().invoke(push, ["--help"]).output
    for param in push.params:
        if isinstance(param, click.Option):
            assert param.help and param.opts[0] in text, param.name
    assert "DATASET_DIR" in text and "HF_ENDPOINT" in text and "resume" in text
