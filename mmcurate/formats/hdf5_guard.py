"""Reading a stranger's HDF5 file without reading anything else, or more than it holds.

HDF5 can make a dataset read bytes that are not in the file: *external storage* (the raw data
lives in other files, named by absolute or relative paths), *external links* (an object of another
file), *virtual datasets* (mapped from other files), and filters that load *plugins* (shared
libraries from the plugin path). A BalanceMM release is a folder of files from the internet, so
each of these is refused before any data is read: a dataset's bytes must come from the file
itself. Soft links are followed only through hard links of the same file.

A file also *declares* sizes: a million frames that are only a fill value, a variable-length
element whose length field says 4 GB, a 300-MB gzip element of zeros. HDF5 allocates what is
declared before it finds the lie (a 5-KB file with one forged length field made it allocate
300 MB), so the declared sizes are checked first: the storage must be written (no fill values), a
chunk may not decompress to more than the budget, the lengths of variable-length elements are
read from the file's own bytes and must sum to no more than the file holds, and fixed-size
elements may not declare more than :func:`declared_budget` allows.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from mmcurate.common.errors import MMCurateError, one_line
from mmcurate.common.limits import MAX_FRAME_BYTES_PER_CLIP

#: Filters built into HDF5 (deflate, shuffle, fletcher32, szip, nbit, scaleoffset) and into h5py
#: (lzf): none needs a plugin. Any other filter id would make HDF5 search its plugin path.
BUILTIN_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset", 32000: "lzf"}
#: How much more than its size a compressed file may declare (fixed-size elements padded with
#: zeros compress well; a real release's JPEGs do not compress at all).
MAX_EXPANSION = 16
#: Soft links followed in a row before the path counts as a loop.
MAX_SOFT_LINKS = 16


def declared_budget(file_size: int) -> int:
    """Most bytes of data a file of ``file_size`` bytes may make a reader allocate."""
    return min(MAX_EXPANSION * file_size + (1 << 20), MAX_FRAME_BYTES_PER_CLIP)


def _h5py() -> Any:
    import h5py

    return h5py


def resolve(f: Any, path: str, what: str) -> Any | None:
    """The object at ``path`` in the open file ``f``, reached through hard links (and soft links
    that lead to hard links) only; None when there is none. An external or user-defined link on
    the way is a one-line error: opening it would open another file."""
    h5py = _h5py()
    node = f["/"]
    parts = [p for p in path.split("/") if p not in ("", ".")]
    hops = 0
    i = 0
    here: list[str] = []
    while i < len(parts):
        if not isinstance(node, h5py.Group):
            return None
        name = parts[i]
        link = node.get(name, getlink=True)
        if link is None:
            return None
        if isinstance(link, h5py.SoftLink):
            hops += 1
            if hops > MAX_SOFT_LINKS:
                raise MMCurateError(f"{what}: soft links under '{path}' form a loop")
            target = [p for p in str(link.path).split("/") if p not in ("", ".")]
            base = [] if str(link.path).startswith("/") else here
            parts = base + target + parts[i + 1 :]
            node, here, i = f["/"], [], 0
            continue
        if isinstance(link, h5py.ExternalLink):
            raise MMCurateError(
                f"{what}: '{'/'.join([*here, name])}' is an external link to {one_line(link.filename, 120)}; "
                "only data inside the file itself is read"
            )
        if not isinstance(link, h5py.HardLink):
            raise MMCurateError(f"{what}: '{'/'.join([*here, name])}' is a user-defined link; not followed")
        node = node[name]
        here.append(name)
        i += 1
    return node


def check_storage(ds: Any, what: str, file_size: int) -> None:
    """A one-line error unless dataset ``ds`` keeps all its data in the file, written, with
    built-in filters, in chunks no larger than the budget of a ``file_size``-byte file."""
    h5py = _h5py()
    name = ds.name
    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        raise MMCurateError(f"{what}: '{name}' is a virtual dataset (its data lives in other files); not read")
    if dcpl.get_external_count():
        target = dcpl.get_external(0)[0]
        raise MMCurateError(
            f"{what}: '{name}' keeps its data in an external file ({one_line(_text(target), 120)}); "
            "only data inside the file itself is read"
        )
    for k in range(dcpl.get_nfilters()):
        code, _, _, fname = dcpl.get_filter(k)
        if code not in BUILTIN_FILTERS:
            raise MMCurateError(
                f"{what}: '{name}' uses HDF5 filter {code} ({one_line(_text(fname), 60) or 'unnamed'}), which needs "
                f"a plugin; only built-in filters are read ({', '.join(sorted(set(BUILTIN_FILTERS.values())))})"
            )
    shape = ds.shape
    if shape is None or not shape or math.prod(shape) == 0:
        return
    element = disk_element_size(ds)
    budget = declared_budget(file_size)
    if layout == h5py.h5d.CHUNKED:
        chunk_bytes = math.prod(ds.chunks) * element
        if chunk_bytes > budget:
            raise MMCurateError(
                f"{what}: '{name}' declares chunks of {chunk_bytes:,} bytes, more than a file of {file_size:,} bytes "
                f"may hold ({budget:,})"
            )
        expected = math.prod(math.ceil(s / c) for s, c in zip(shape, ds.chunks, strict=True))
        if ds.id.get_num_chunks() < expected:
            raise MMCurateError(
                f"{what}: '{name}' declares {shape[0]:,} elements but stores only part of them (the rest would be a "
                "fill value)"
            )
    elif layout == h5py.h5d.CONTIGUOUS and ds.id.get_offset() is None:
        raise MMCurateError(
            f"{what}: '{name}' declares {shape[0]:,} elements but stores none (they would all be a fill value)"
        )


def disk_element_size(ds: Any) -> int:
    """Bytes one element of ``ds`` takes in the file (a variable-length element: its descriptor)."""
    if _is_vlen(ds.dtype):
        sizeof_addr = ds.file.id.get_create_plist().get_sizes()[0]
        return 4 + sizeof_addr + 4  # sequence length, global heap address, heap object index
    return int(ds.id.get_type().get_size())


def _is_vlen(dtype: np.dtype) -> bool:
    h5py = _h5py()
    if h5py.check_vlen_dtype(dtype) is not None:
        return True
    info = h5py.check_string_dtype(dtype)
    return info is not None and info.length is None


def vlen_lengths(ds: Any, data: bytes, what: str) -> list[int]:
    """The declared length of every element of the 1-D variable-length dataset ``ds``, read from the
    file's own bytes (``data``) before HDF5 reads, and allocates for, any of them.

    The lengths sit in each element's descriptor (4 bytes, little-endian, then the global heap
    address and index). Contiguous and unfiltered chunked storage are read; a compact or filtered
    one cannot be checked first and is refused.
    """
    h5py = _h5py()
    n = int(ds.shape[0])
    size = disk_element_size(ds)
    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    if layout == h5py.h5d.CONTIGUOUS:
        start = ds.id.get_offset()
        raw = data[start : start + n * size] if start is not None else b""
        if len(raw) < n * size:
            raise MMCurateError(f"{what}: '{ds.name}' points past the end of the file")
        return _lengths(raw, n, size)
    if layout == h5py.h5d.CHUNKED and dcpl.get_nfilters() == 0:
        per_chunk = int(ds.chunks[0])
        out = [0] * n
        for k in range(ds.id.get_num_chunks()):
            info = ds.id.get_chunk_info(k)
            first = int(info.chunk_offset[0])
            raw = data[info.byte_offset : info.byte_offset + info.size]
            count = min(per_chunk, n - first)
            if first >= n or count <= 0:
                continue
            if len(raw) < count * size:
                raise MMCurateError(f"{what}: '{ds.name}' has a chunk that points past the end of the file")
            out[first : first + count] = _lengths(raw, count, size)
        return out
    kind = "compact" if layout == h5py.h5d.COMPACT else "compressed"
    raise MMCurateError(
        f"{what}: '{ds.name}' holds variable-length frames in {kind} storage, whose sizes cannot be checked before "
        "reading; write them contiguous (h5py's default)"
    )


def _lengths(raw: bytes, count: int, size: int) -> list[int]:
    return [struct.unpack_from("<I", raw, i * size)[0] for i in range(count)]


def scalar_attribute(obj: Any, name: str) -> float | None:
    """A numeric scalar attribute of ``obj`` as a float, or None when absent or anything else
    (an attribute is read only once its shape and type are known to be one number)."""
    if name not in obj.attrs:
        return None
    attr = obj.attrs.get_id(name)
    if attr.shape not in ((), (1,)) or attr.dtype.kind not in "fiu":
        return None
    value = np.asarray(obj.attrs[name], dtype=np.float64).reshape(-1)[0]
    return float(value) if np.isfinite(value) else None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
