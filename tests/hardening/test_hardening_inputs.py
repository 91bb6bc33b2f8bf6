"""The input side of issue 22, kept as tests: foreign files in the field's formats, declared sizes,
files that are not files, and options and recipes that ask for the absurd.

Each test is one attack (or a family of them) as a hostile user would try it, on small real inputs:
HDF5 files built with h5py the ways the attacks use HDF5 (external storage, external and soft links,
virtual datasets, plugin filters, fill values, forged lengths), pickles written opcode by opcode, FIFOs
made with ``mkfifo``, a few av_digits clips and clips encoded here with PyAV. Runs that could hang or
exhaust memory when a defect comes back run in a subprocess with a timeout, and measure their own peak
memory.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import time
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from _fixtures_ingest import make_ingest_dir, make_selection
from PIL import Image
from test_hardening import ENV, cli, make_raw, mm, one_line_error

from mmcurate.common.errors import MMCurateError
from mmcurate.store import IngestDir, Workdir

h5py = pytest.importorskip("h5py", reason="h5py is not installed (pip install 'mmcurate[formats]')")

from mmcurate.formats.balancemm import frames_to_hdf5  # noqa: E402  (needs h5py)
from mmcurate.formats.safe_pickle import dump_array  # noqa: E402

PRESET = "vggsound_stft"  # 129 bins
SECRET = b"TOPSECRET-outside-the-release"
FRAME = 1024  # bytes per fixed-size frame element in the attack files


def _jpeg(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 12), (value, 40, 0)).save(buf, format="JPEG")
    return buf.getvalue()


JPEGS = [_jpeg(v) for v in (10, 120, 240)]


def run_python(code: str, *args: str, cwd: Path | None = None, timeout: float = 120) -> str:
    """``python -c CODE ARGS`` with this tree importable; its stdout (it must exit 0)."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**ENV, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), ENV.get("PYTHONPATH", "")])},
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# ------------------------------------------------------------------------- a BalanceMM release


def write_release(root: Path, ids: list[str]) -> Path:
    """A BalanceMM-format release of ``ids``: annotations.json, visual/<id>.hdf5 (3 JPEG frames),
    audio/<id>.pkl (a 129 x 40 spectrogram)."""
    release = root / "release"
    (release / "visual").mkdir(parents=True)
    (release / "audio").mkdir()
    rng = np.random.default_rng(0)
    for i, clip in enumerate(ids):
        (release / "visual" / f"{clip}.hdf5").write_bytes(frames_to_hdf5(JPEGS, None, None))
        spec = rng.uniform(-4, 4, size=(129, 40)).astype(np.float32) + i
        (release / "audio" / f"{clip}.pkl").write_bytes(dump_array(spec))
    doc = {
        "labels": ["a", "b"],
        "database": {c: {"subset": "training", "label": "ab"[k % 2]} for k, c in enumerate(ids)},
    }
    (release / "annotations.json").write_text(json.dumps(doc))
    return release


def ingest_release(release: Path, work: Path, cwd: Path | None = None, timeout: float = 120):
    return cli(
        "ingest",
        str(release),
        "--layout",
        "balancemm",
        "--layout-option",
        f"audio_preset={PRESET}",
        "--workdir",
        str(work),
        "--workers",
        "1",
        cwd=cwd,
        timeout=timeout,
    )


def failures_by_id(work: Path) -> dict[str, str]:
    return {f["sample_id"]: f["reason"] for f in IngestDir(work / "ingest").read_failures()}


# -------------------------------------------------------- HDF5 features that read beyond the file


def _secret_frames() -> bytes:
    """Three fixed-size frame elements whose JPEGs are followed by bytes the release must never carry."""
    return b"".join(j + SECRET + bytes(FRAME - len(j) - len(SECRET)) for j in JPEGS)


def _external_storage(path: Path, target: str | Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("video", (3,), dtype=f"S{FRAME}", external=[(str(target), 0, h5py.h5f.UNLIMITED)])


def _other_file(path: Path) -> Path:
    with h5py.File(path, "w") as f:
        f.create_dataset("video", data=np.frombuffer(_secret_frames(), dtype=f"S{FRAME}"))
    return path


def build_reading_outside(visual: Path, outside: Path) -> dict[str, str]:
    """Replace HDF5 files of a release with each way HDF5 reads outside the file; returns clip id ->
    what its failure line must say. ``outside`` (not in the release) holds the files they point at."""
    secret = outside / "secret.bin"
    secret.write_bytes(_secret_frames())
    other = _other_file(outside / "other.h5")
    fifo = outside / "frames.fifo"
    os.mkfifo(fifo)
    expect = {}
    _external_storage(visual / "ext_abs.hdf5", secret)
    expect["ext_abs"] = "keeps its data in an external file"
    _external_storage(visual / "ext_rel.hdf5", "secret.bin")  # relative: resolved from the working directory
    expect["ext_rel"] = "keeps its data in an external file"
    _external_storage(visual / "ext_fifo.hdf5", fifo)  # reading it would wait for a writer forever
    expect["ext_fifo"] = "keeps its data in an external file"
    with h5py.File(visual / "elink.hdf5", "w") as f:
        f["video"] = h5py.ExternalLink(str(other), "/video")
    expect["elink"] = "is an external link"
    with h5py.File(visual / "soft_to_elink.hdf5", "w") as f:  # a soft link through a linked group
        f["g"] = h5py.ExternalLink(str(other), "/")
        f["video"] = h5py.SoftLink("/g/video")
    expect["soft_to_elink"] = "is an external link"
    with h5py.File(visual / "virtual.hdf5", "w") as f:
        layout = h5py.VirtualLayout(shape=(3,), dtype=f"S{FRAME}")
        layout[:] = h5py.VirtualSource(str(other), "video", shape=(3,))
        f.create_virtual_dataset("video", layout)
    expect["virtual"] = "is a virtual dataset"
    with h5py.File(visual / "plugin.hdf5", "w") as f:  # filter 32004 (LZ4) comes from a plugin library
        d = f.create_dataset(
            "video", (3,), dtype=f"S{FRAME}", chunks=(3,), compression=32004, allow_unknown_filter=True
        )
        d.id.write_direct_chunk((0,), np.array(JPEGS, dtype=f"S{FRAME}").tobytes())
    expect["plugin"] = "needs a plugin"
    buf = io.BytesIO(frames_to_hdf5(JPEGS, None, None))
    with h5py.File(buf, "r+") as f:  # the frames are fine; the times an export adds read outside
        f.create_dataset("frame_times", (3,), dtype="f8", external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
    (visual / "times_ext.hdf5").write_bytes(buf.getvalue())
    expect["times_ext"] = "'/frame_times' keeps its data in an external file"
    return expect


@pytest.mark.slow
def test_hdf5_that_reads_outside_itself_is_one_failure_line_each(tmp_path: Path) -> None:
    """External storage (absolute, relative, a FIFO), external links (direct, behind a soft link),
    virtual datasets, plugin filters: each clip fails in one line, nothing outside is read, no hang."""
    outside = tmp_path / "outside"
    outside.mkdir()
    attacks = ["ext_abs", "ext_rel", "ext_fifo", "elink", "soft_to_elink", "virtual", "plugin", "times_ext"]
    release = write_release(tmp_path, ["good1", "good2", *attacks])
    expect = build_reading_outside(release / "visual", outside)
    work = tmp_path / "work"
    proc = ingest_release(release, work, cwd=outside, timeout=120)  # a FIFO read would hang: the timeout fails it
    assert proc.returncode == 0, proc.stderr[-2000:]
    reasons = failures_by_id(work)
    assert set(reasons) == set(attacks), reasons
    for clip, fragment in expect.items():
        assert fragment in reasons[clip] and "\n" not in reasons[clip], (clip, reasons[clip])
    assert IngestDir(work / "ingest").read_manifest(["sample_id"]).column("sample_id").to_pylist() == [
        "good1",
        "good2",
    ]
    for p in (work / "ingest").rglob("*"):
        assert not p.is_file() or SECRET not in p.read_bytes(), f"{p} carries bytes from outside the release"


# ----------------------------------------------------------------- declared sizes are not sizes


def _gzip_zeros(path: Path, size: int) -> None:
    """One 'video' element of ``size`` bytes (a JPEG, then zeros) stored gzip-compressed: a few hundred
    KB on disk, written chunk by chunk so the test never holds it whole."""
    comp = zlib.compressobj(6)
    parts = [comp.compress(JPEGS[0])]
    block, left = bytes(1 << 20), size - len(JPEGS[0])
    while left > 0:
        parts.append(comp.compress(block[: min(left, len(block))]))
        left -= len(block)
    parts.append(comp.flush())
    with h5py.File(path, "w") as f:
        d = f.create_dataset("video", (1,), dtype=f"S{size}", chunks=(1,), compression="gzip")
        d.id.write_direct_chunk((0,), b"".join(parts))


def _vlen_offset(data: bytes) -> int:
    with h5py.File(io.BytesIO(data), "r") as f:
        return int(f["video"].id.get_offset())


def build_declared(kind: str, path: Path) -> None:
    """HDF5 files whose declared sizes are far beyond what they hold."""
    if kind == "fill_1e6":  # 10^6 frames that are only the fill value (a 3-KB file)
        with h5py.File(path, "w") as f:
            f.create_dataset("video", (10**6,), dtype=f"S{FRAME}", fillvalue=np.bytes_(JPEGS[0]))
    elif kind == "fill_3000":  # under the frame limit, still nothing stored
        with h5py.File(path, "w") as f:
            f.create_dataset("video", (3000,), dtype=f"S{FRAME}", fillvalue=np.bytes_(JPEGS[0]))
    elif kind == "gzip_300mb":
        _gzip_zeros(path, 300_000_000)
    elif kind == "forged_length":  # a variable-length element whose length field says 300 MB
        data = bytearray(frames_to_hdf5(JPEGS, None, None))
        data[_vlen_offset(bytes(data)) : _vlen_offset(bytes(data)) + 4] = struct.pack("<I", 300_000_000)
        path.write_bytes(bytes(data))
    elif kind == "aliased":  # 3000 frames that all point at one stored 1-MB object: 3 GB from a 3-MB file
        data = bytearray(frames_to_hdf5([JPEGS[0] + bytes(1 << 20)] + [JPEGS[1]] * 2999, None, None))
        at = _vlen_offset(bytes(data))
        for i in range(1, 3000):
            data[at + 16 * i : at + 16 * (i + 1)] = data[at : at + 16]
        path.write_bytes(bytes(data))
    elif kind == "times_1e8":  # fine frames, and frame_times declaring 10^8 values (never written)
        buf = io.BytesIO(frames_to_hdf5(JPEGS, None, 3.0))
        with h5py.File(buf, "r+") as f:
            f.create_dataset("frame_times", (10**8,), dtype="f8", chunks=(1 << 20,))
        path.write_bytes(buf.getvalue())
    else:
        raise ValueError(kind)


_READ_AND_MEASURE = """
import json, resource, sys, time
from pathlib import Path
from mmcurate.formats.balancemm import read_hdf5_frames
from mmcurate.common.errors import MMCurateError
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.monotonic()
try:
    got = read_hdf5_frames(Path(sys.argv[1]), "clip.hdf5")
    out = {"frames": len(got.frames), "times": got.times is not None}
except MMCurateError as exc:
    out = {"error": str(exc)}
out["grew_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
out["seconds"] = time.monotonic() - t
print(json.dumps(out))
"""

DECLARED = {
    "fill_1e6": "declares 1,000,000 frames, more than the 3600 one clip may keep",
    "fill_3000": "declares 3,000 elements but stores none",
    "gzip_300mb": "declares chunks of 300,000,000 bytes",
    "forged_length": "frame 1 of 3 declares 300,000,000 bytes",
    "aliased": "frames declare 3,14",  # 3000 x 1 MB: more than the file holds
    "times_1e8": None,  # read, without the times (they are not one per frame), and without reading them
}


@pytest.mark.parametrize("kind", sorted(DECLARED))
def test_hdf5_declared_sizes_are_checked_before_anything_is_allocated(kind: str, tmp_path: Path) -> None:
    """Before: 10^6 fill-value frames decoded one by one (45 s), 1.09 GB for frame_times, 894 MB for a
    gzip element of zeros, 3 GB for aliased frames, 300 MB for a forged length. Now each is refused (or
    its bogus part ignored) from what the file declares, with at most a few MB allocated."""
    path = tmp_path / "clip.hdf5"
    build_declared(kind, path)
    got = json.loads(run_python(_READ_AND_MEASURE, str(path)))
    if DECLARED[kind] is None:
        assert got.get("frames") == 3 and got["times"] is False, got
    else:
        assert DECLARED[kind] in got.get("error", ""), got
    assert got["grew_mb"] < 64, f"{kind}: reading grew the process by {got['grew_mb']:.0f} MB"
    assert got["seconds"] < 10, got


def test_legitimate_hdf5_layouts_still_read(tmp_path: Path) -> None:
    """The checks refuse what reads elsewhere or declares too much, not the ways releases store frames:
    contiguous and chunked variable-length frames, gzip-compressed fixed-length strings, opaque bytes."""
    from mmcurate.formats.balancemm import read_hdf5_frames

    frames = [_jpeg(v) for v in (10, 60, 120, 200, 250)]
    width = max(map(len, frames))
    builders = {
        "chunked vlen": lambda f: _vlen(f, frames, chunks=(2,)),
        "growing vlen": lambda f: _vlen(f, frames, maxshape=(None,)),
        "gzip strings": lambda f: f.create_dataset(
            "video", data=np.array(frames, dtype=f"S{width}"), compression="gzip", shuffle=True
        ),
        "opaque": lambda f: f.create_dataset("video", data=np.array([np.void(j.ljust(width, b"\0")) for j in frames])),
    }
    for name, build in builders.items():
        buf = io.BytesIO()
        with h5py.File(buf, "w") as f:
            build(f)
        got = read_hdf5_frames(buf.getvalue(), name).frames
        assert [g[: len(j)] for g, j in zip(got, frames, strict=True)] == frames, name


def _vlen(f, frames: list[bytes], **kw) -> None:  # type: ignore[no-untyped-def]
    d = f.create_dataset("video", (len(frames),), dtype=h5py.vlen_dtype(np.uint8), **kw)
    for i, j in enumerate(frames):
        d[i] = np.frombuffer(j, np.uint8)


# ------------------------------------------------------------------------------------- pickles


class _Call:
    """Pickles as ``fn(*args)``: how a hostile .pkl names a callable and its arguments."""

    def __init__(self, fn, *args, state=None):  # type: ignore[no-untyped-def]
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def hostile_pickle(kind: str) -> bytes:
    reconstruct = np.zeros(1).__reduce__()[0]
    if kind == "zero_stride":  # a (129, 10^12) view of 4 bytes
        obj = _Call(np.ndarray, (129, 10**12), np.dtype("f4"), bytearray(4), 0, (0, 0))
    elif kind == "bufferless":  # numpy.ndarray(shape) allocates 1 GB of nothing
        obj = _Call(np.ndarray, (129, 2_000_000), np.dtype("f4"))
    elif kind == "bytearray_1e9":
        obj = _Call(bytearray, 10**9)
    elif kind == "object_state":  # an object array's state with a short list: crashes numpy itself
        obj = _Call(reconstruct, np.ndarray, (0,), b"b", state=(1, (10**9,), np.dtype("O"), False, [0]))
    elif kind == "reconstruct_big":
        obj = _Call(reconstruct, np.ndarray, (129, 2_000_000), b"b")
    else:
        raise ValueError(kind)
    return pickle.dumps(obj, protocol=2)


_LOAD_AND_MEASURE = """
import json, resource, sys
from mmcurate.formats.safe_pickle import load_array
from mmcurate.common.errors import MMCurateError
data = open(sys.argv[1], "rb").read()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    arr = load_array(data, "x.pkl")
    out = {"shape": list(arr.shape)}
except MMCurateError as exc:
    out = {"error": str(exc)}
out["grew_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps(out))
"""

PICKLES = {
    "zero_stride": "with strides or an offset",
    "bufferless": "without the bytes it holds",
    "bytearray_1e9": "calls bytearray with something other than the bytes it holds",
    "object_state": "the array has dtype object",
    "reconstruct_big": "declares an array of shape (129, 2000000) without its data",
}


@pytest.mark.parametrize("kind", sorted(PICKLES))
def test_pickles_cannot_declare_more_than_they_hold(kind: str, tmp_path: Path) -> None:
    """Before: a 104-byte zero-stride (129, 10^12) array was an internal MemoryError that stopped the
    ingest, a buffer-less (129, 2*10^6) one was accepted (494 MB shard), bytearray(10**9) allocated
    1.28 GB before it was refused, an object array's state crashed the interpreter. Now each is a
    one-line refusal that allocates nothing."""
    path = tmp_path / "x.pkl"
    path.write_bytes(hostile_pickle(kind))
    assert path.stat().st_size < 300
    got = json.loads(run_python(_LOAD_AND_MEASURE, str(path)))
    assert PICKLES[kind] in got.get("error", ""), got
    assert got["grew_mb"] < 32, f"{kind}: loading grew the process by {got['grew_mb']:.0f} MB"


# -------------------------------------------------- the rest of a hostile release, in one ingest


@pytest.mark.slow
def test_hostile_release_files_are_one_failure_line_each(tmp_path: Path) -> None:
    """A FIFO for a .pkl, a clip id of 300 characters, a spectrogram longer than its clip, a pickle
    bigger than any spectrogram of its clip: one failure line each; the others are ingested."""
    long_id = "c" * 300
    release = write_release(tmp_path, ["good", "fifo_pkl", "long_spec", "huge_pkl"])
    ann = json.loads((release / "annotations.json").read_text())
    ann["database"][long_id] = {"subset": "training", "label": "a"}  # before: OSError, the ingest stopped
    (release / "annotations.json").write_text(json.dumps(ann))
    (release / "audio" / "fifo_pkl.pkl").unlink()
    os.mkfifo(release / "audio" / "fifo_pkl.pkl")
    long_spec = np.zeros((129, 20_000), np.float32)  # 160 s at vggsound_stft's hop for a 3-frame clip
    (release / "audio" / "long_spec.pkl").write_bytes(dump_array(long_spec))
    with open(release / "audio" / "huge_pkl.pkl", "wb") as fh:  # 64 MB (sparse): never read whole
        fh.truncate(64 << 20)
    work = tmp_path / "work"
    proc = ingest_release(release, work)
    assert proc.returncode == 0, proc.stderr[-2000:]
    reasons = failures_by_id(work)
    assert set(reasons) == {"fifo_pkl", "long_spec", "huge_pkl", long_id}, reasons
    assert "a FIFO, not a regular file" in reasons["fifo_pkl"]
    assert "file name too long" in reasons[long_id]
    assert "20,000 time frames, more than the" in reasons["long_spec"]
    assert "larger than the" in reasons["huge_pkl"] and "allowed" in reasons["huge_pkl"]
    assert IngestDir(work / "ingest").read_manifest(["sample_id"]).column("sample_id").to_pylist() == ["good"]


def test_annotations_that_break_json_parsers_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """100,000 nested arrays (RecursionError) and a 5,000-digit integer (ValueError) were internal
    errors; so were the same in an input manifest (JSON lines) and a JSON file of feature settings."""
    release = write_release(tmp_path, ["a1", "a2"])
    nested = '{"labels": ["a"], "database": {}, "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    digits = '{"labels": ["a"], "database": {}, "x": ' + "7" * 5000 + "}"
    valid = (release / "annotations.json").read_text()
    for text in (nested, digits):
        (release / "annotations.json").write_text(text)
        line = one_line_error(
            mm(capsys, "ingest", str(release), "--layout", "balancemm", "--workdir", str(tmp_path / "w"))
        )
        assert "annotations.json" in line and "not valid JSON" in line and len(line) < 400
        (release / "annotations.json").write_text(valid)
        (tmp_path / "settings.json").write_text(text)
        line = one_line_error(
            mm(
                capsys,
                "ingest",
                str(release),
                "--layout",
                "balancemm",
                "--layout-option",
                f"audio_preset={tmp_path / 'settings.json'}",
                "--workdir",
                str(tmp_path / "w"),
            )
        )
        assert "settings.json" in line and "not valid JSON" in line
        manifest = tmp_path / "m.jsonl"
        manifest.write_text(text + "\n")
        line = one_line_error(
            mm(capsys, "ingest", str(release), "--manifest", str(manifest), "--workdir", str(tmp_path / "w"))
        )
        assert "m.jsonl, line 1" in line and "not valid JSON" in line


def test_planted_json_in_the_work_directory_is_a_one_line_error(tmp_path: Path) -> None:
    """The store's own JSON files (config.json, scores.json...) are files a user can replace too."""
    from mmcurate.store.io import read_json

    for text in ("[" * 100_000 + "]" * 100_000, "7" * 5000):
        (tmp_path / "config.json").write_text(text)
        with pytest.raises(MMCurateError, match="config.json: the config is not valid JSON"):
            read_json(tmp_path / "config.json", what="the config", fix="rerun ingest")


# ------------------------------------------------------------------- never open anything but files


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


@pytest.mark.slow
def test_fifos_are_never_opened(av_digits: Path, tmp_path: Path) -> None:
    """A FIFO where a clip, manifest, class list, annotation file, recipe, feature settings, Kinetics
    CSV or imported scores are expected: before, reading it waited for a writer forever (discovery
    probing ``x.dat`` hung the whole ingest). Now a FIFO in RAW_DIR is listed as skipped, one named as
    input is one failure line, and one given as an option is a one-line error; nothing waits."""
    raw = make_raw(av_digits, tmp_path, per_label=1)
    _fifo(raw / "1" / "pipe.dat")  # probed by content: the probe would read it
    _fifo(raw / "2" / "pipe.mp4")
    work = tmp_path / "work"
    proc = cli("ingest", str(raw), "--workdir", str(work), "--workers", "1", timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = json.loads((work / "ingest" / "stats.json").read_text())
    assert sorted(stats["skipped_examples"]) == [
        "1/pipe.dat (not a regular file (a FIFO), not opened)",
        "2/pipe.mp4 (not a regular file (a FIFO), not opened)",
    ]
    assert stats["samples"] == 3

    listed = tmp_path / "listed.csv"  # a manifest naming a FIFO: one failure line
    listed.write_text("path,label\n1/pipe.dat,1\n" + "".join(f"{p.relative_to(raw)},x\n" for p in raw.rglob("*.mp4")))
    proc = cli("ingest", str(raw), "--manifest", str(listed), "--workdir", str(tmp_path / "w2"), timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    reasons = {f["file"]: f["reason"] for f in IngestDir(tmp_path / "w2" / "ingest").read_failures()}
    assert "a FIFO, not a regular file" in reasons["1/pipe.dat"]

    release = write_release(tmp_path / "bmm", ["a1", "a2"])
    scored = make_ingest_dir(tmp_path / "scored" / "ingest", n=12, with_features=False)
    kinetics = tmp_path / "kinetics"
    _fifo(kinetics / "annotations" / "train.csv")  # the adapter opens every .csv to see if it is one
    (kinetics / "x.mp4").write_bytes(b"")

    def w(name: str) -> tuple[str, str]:
        return ("--workdir", str(tmp_path / f"w-{name}"))

    cases = {
        "manifest": ("ingest", str(raw), "--manifest", str(_fifo(tmp_path / "m.csv")), *w("m")),
        "class list": ("ingest", str(raw), "--classes", str(_fifo(tmp_path / "classes.txt")), *w("c")),
        "annotations": (
            "ingest",
            str(release),
            "--layout",
            "balancemm",
            "--layout-option",
            f"annotations={_fifo(release / 'ann.json')}",
            *w("a"),
        ),
        "feature settings": (
            "ingest",
            str(release),
            "--layout",
            "balancemm",
            "--layout-option",
            f"audio_preset={_fifo(tmp_path / 'settings.json')}",
            *w("f"),
        ),
        "recipe": ("run", str(_fifo(tmp_path / "recipe.yaml")), "--dry-run", *w("r")),
        "scores": ("score", str(scored), "--scores-from", str(_fifo(tmp_path / "scores.csv"))),
    }
    for name, args in cases.items():
        line = one_line_error(cli(*args, timeout=60))  # a FIFO opened for reading would hang it: the timeout fails
        assert "a FIFO, not a regular file" in line, (name, line)
    # the Kinetics adapter opens every .csv under RAW_DIR to see whether it is an annotation file
    proc = cli("ingest", str(kinetics), "--layout", "kinetics_sounds", *w("k"), timeout=60)
    assert proc.returncode == 0, proc.stderr[-1000:]
    stats = json.loads((tmp_path / "w-k" / "ingest" / "stats.json").read_text())
    assert stats["skipped_examples"] == ["annotations/train.csv (not a regular file (a FIFO), not opened)"]


# ------------------------------------------------------------------- per-clip frame and option bounds


def _long_clip(path: Path, seconds: int, size: tuple[int, int], rate: int = 1) -> Path:
    """An MPEG-4 clip of ``seconds`` at ``rate`` frames per second and ``size`` pixels (grey frames)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, rate)
        frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 90, np.uint8), format="rgb24")
        for i in range(seconds * rate):
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.mark.slow
def test_frames_per_clip_are_bounded_before_decoding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--frames 100000`` on two clips peaked at 17.2 GB: refused up front now. Per clip, frames that
    follow from its declared duration (``--fps``) or size (``--size 0``) are checked before decoding:
    a 2-hour clip at ``--fps 1`` (7200 frames) and 100 native 4K frames (3.7 GB) are one failure line
    each, and the 10-minute clip at ``--fps 1`` (600 frames) is ingested."""
    raw = tmp_path / "raw"
    (raw / "a").mkdir(parents=True)
    line = one_line_error(mm(capsys, "ingest", str(raw), "--frames", "100000", "--out", str(tmp_path / "o")))
    assert "--frames 100000" in line and "3600" in line
    _long_clip(raw / "a" / "two_hours.mp4", 7200, (16, 16))
    _long_clip(raw / "a" / "ten_minutes.mp4", 600, (16, 16))
    _long_clip(raw / "a" / "uhd.mp4", 4, (3840, 2160), rate=25)
    out = tmp_path / "out"
    started = time.monotonic()
    keep = ("--missing-modality", "keep", "--workers", "1")  # the clips are silent
    proc = mm(capsys, "ingest", str(raw), "--fps", "1", "--out", str(out), "--size", "16", *keep)
    assert proc.returncode == 0, proc.stderr
    reasons = {f["file"]: f["reason"] for f in IngestDir(out).read_failures()}
    assert set(reasons) == {"a/two_hours.mp4"}, reasons
    assert "would keep 7200 frames, more than the 3600" in reasons["a/two_hours.mp4"]
    rows = {r["sample_id"]: r for r in IngestDir(out).read_manifest().to_pylist()}
    assert rows["a/ten_minutes.mp4"]["num_frames"] == 600
    assert time.monotonic() - started < 120

    out = tmp_path / "native"
    proc = mm(capsys, "ingest", str(raw), "--frames", "100", "--size", "0", "--out", str(out), *keep)
    assert proc.returncode == 0, proc.stderr
    reasons = {f["file"]: f["reason"] for f in IngestDir(out).read_failures()}
    assert set(reasons) == {"a/uhd.mp4"} and "100 frames of 3840x2160" in reasons["a/uhd.mp4"], reasons


OPTION_CASES = {
    "ingest --sample-rate 10000000": (["ingest", "{root}", "--sample-rate", "10000000"], "--sample-rate"),
    "ingest --frames 100000": (["ingest", "{root}", "--frames", "100000"], "--frames"),
    "ingest --fps 1e6": (["ingest", "{root}", "--fps", "1e6"], "--fps"),
    "ingest --size 100000": (["ingest", "{root}", "--size", "100000"], "--size"),
    "ingest --frames 3000 --size 4096": (["ingest", "{root}", "--frames", "3000", "--size", "4096"], "GB"),
    "ingest --shard-size 10^9": (["ingest", "{root}", "--shard-size", "1000000000"], "--shard-size"),
    "ingest --workers 10^7": (["ingest", "{root}", "--workers", "10000000"], "--workers"),
    "ingest --video-stream 10^6": (["ingest", "{root}", "--video-stream", "1000000"], "--video-stream"),
    "ingest --cpus-per-job 1e9": (["ingest", "{root}", "--cpus-per-job", "1e9"], "--cpus-per-job"),
    "ingest --task-retries 10^9": (["ingest", "{root}", "--task-retries", "1000000000"], "--task-retries"),
    "export --max-frames 10^6": (["export", "--workdir", "{root}/w", "--max-frames", "1000000"], "--max-frames"),
    "ingest split_seed 10^20": (
        ["ingest", "{root}", "--layout", "cremad", "--layout-option", "split_seed=99999999999999999999"],
        "split_seed",
    ),
    "score --seed 10^20": (["score", "--workdir", "{root}/w", "--seed", "99999999999999999999"], "--seed"),
    "balance --seed 10^20": (["balance", "--workdir", "{root}/w", "--seed", "99999999999999999999"], "--seed"),
    "score --seed 2^32": (["score", "--workdir", "{root}/w", "--seed", str(2**32)], "--seed"),
}


@pytest.fixture(scope="module")
def option_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("options")
    make_ingest_dir(root / "w" / "ingest", n=12, with_features=False)
    return root


@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_absurd_options_are_one_line_errors_up_front(
    case: str, option_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--sample-rate 10000000`` was accepted, then every clip failed in the audio encoder; seeds of 20
    digits were internal errors. Every such value is refused before anything is read."""
    args, expect = OPTION_CASES[case]
    if args[0] == "ingest":
        args = [*args, "--out", "{root}/o"]  # never the default work directory of the test's cwd
    line = one_line_error(mm(capsys, *[a.replace("{root}", str(option_root)) for a in args]))
    assert expect in line, line


def test_feature_recipes_are_bounded() -> None:
    """A feature recipe (a recipe's dict, a release's JSON) is sized like the options: an FFT of 10^9
    samples or a fixed length of 10^12 frames would allocate before anything could fail."""
    from mmcurate.features import resolve_feature_config

    for change in ({"n_fft": 10**9}, {"hop_length": 10**9}, {"target_frames": 10**12}, {"tile_seconds": 1e9}):
        with pytest.raises(MMCurateError, match="invalid audio feature config"):
            resolve_feature_config({"preset": PRESET, **change})
    with pytest.raises(MMCurateError, match="n_mels"):
        resolve_feature_config({"preset": "logmel", "n_mels": 10**6})
    resolve_feature_config({"preset": PRESET, "n_fft": 4096, "target_frames": 100_000})  # large, still fine


# ----------------------------------------------------------------------------- recipes and errors


def _alias_bomb(levels: int, where: str) -> str:
    lines = ["source: {raw_dir: raw}", f"{where}:"]
    lines.append("  a0: &a [x,x,x,x,x,x,x,x,x]")
    prev = "a"
    for i in range(1, levels):
        cur = chr(ord("a") + i)
        lines.append(f"  a{i}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = cur
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_yaml_alias_bombs_and_deep_nesting_are_refused_fast(tmp_path: Path) -> None:
    """A 395-byte recipe of nested aliases (9^9 values) ran for minutes; one quoting the expanded value
    in its error printed 39 MB. Now: refused in a second, in one line of bounded length."""
    cases = {
        "bomb.yaml": _alias_bomb(9, "ingest"),  # every later step would walk 387 million values
        "quoted.yaml": "source: {raw_dir: raw}\nx: &a ["
        + "a" * 50
        + "]\n"
        + "".join(
            f"x{i}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
            for i, (p, c) in enumerate(zip("abcdefg", "bcdefgh", strict=True))
        )
        + "ingest: {frames: *h}\n",
        "deep.yaml": "source: {raw_dir: raw}\ningest: " + "[" * 100_000 + "]" * 100_000 + "\n",
    }
    (tmp_path / "ok.yaml").write_text("source: {raw_dir: raw}\n")
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        started = time.monotonic()
        proc = cli("run", str(tmp_path / name), "--dry-run", "--workdir", str(tmp_path / "w"), timeout=60)
        took = time.monotonic() - started
        line = one_line_error(proc)
        assert took < 20 and len(proc.stderr) < 1200, (name, took, len(proc.stderr))
        assert name in line
    assert len(cases["bomb.yaml"]) < 400
    proc = cli(
        "run",
        str(tmp_path / "ok.yaml"),
        "--dry-run",
        "--set",
        "ingest.frames=[" + "[" * 5000 + "]" * 5000 + "]",
        timeout=60,
    )
    assert len(one_line_error(proc)) < 1200


def test_error_messages_are_one_bounded_line() -> None:
    """Whatever a message quotes (a value of a million characters, a file name with line breaks), the
    error is one line a terminal can show, keeping its start and its advice."""
    err = MMCurateError("recipe r.yaml: ingest.frames must be an integer (got " + "[x] " * 250_000 + "); fix it")
    text = str(err)
    assert len(text) < 1100 and text.startswith("recipe r.yaml: ingest.frames") and text.endswith("fix it")
    assert "\n" not in str(MMCurateError("a\nb\r\nc")) and str(MMCurateError("short")) == "short"


# ---------------------------------------------------------------------- --out that cannot be made


@pytest.fixture(scope="module")
def balanced_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work directory with a store-format ingest and a balanced selection (export and browse read it)."""
    root = tmp_path_factory.mktemp("outs")
    work = Workdir(root / "work")
    make_ingest_dir(work.ingest.path, n=24, frames_per_clip=4, rows_per_shard=6, with_features=False)
    work.balanced.path.mkdir(parents=True)
    work.balanced.write_selection(make_selection(work.ingest.path, drop_every=5))
    work.balanced.write_meta({"ingest_dir": str(work.ingest.path), "bin_edges": [-1, -1 / 3, 1 / 3, 1], "seed": 0})
    (root / "file").write_text("a regular file\n")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("where", ["under a file", "in /proc", "a name too long"])
@pytest.mark.parametrize("stage", ["ingest", "export", "browse", "balance", "reeval", "run"])
def test_an_output_folder_that_cannot_be_made_is_a_one_line_error(
    stage: str, where: str, balanced_work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out`` under a regular file, or in /proc, was an internal error in ingest, export and browse
    (NotADirectoryError, FileNotFoundError); a name longer than the file system allows was one too."""
    root = balanced_work
    out = {
        "under a file": f"{root}/file/out",
        "in /proc": "/proc/mmcurate-out",
        "a name too long": f"{root}/{'o' * 300}",
    }[where]
    work = str(root / "work")
    recipe = root / "recipe.yaml"
    recipe.write_text(f"source: {{raw_dir: {root / 'raw'}}}\n")
    argv = {
        "ingest": ["ingest", str(root), "--out", out],
        "export": ["export", "--format", "balancemm", "--workdir", work, "--out", out, "--audio-preset", PRESET],
        "browse": ["browse", str(root / "work" / "balanced"), "--out", out],
        "balance": ["balance", "--workdir", work, "--out", out, "--bins", "2"],
        "reeval": ["reeval", "--workdir", work, "--out", out, "--methods", "audio_only"],
        "run": ["run", str(recipe), "--workdir", out],
    }[stage]
    line = one_line_error(mm(capsys, *argv))
    assert out[:40] in line, line
