"""Pickled numpy arrays, read without trusting the pickle and written so that any numpy can read them.

The field ships spectrograms as pickles (a BalanceMM release holds one ``.pkl`` per clip). Unpickling
runs whatever callables the file names, so a downloaded ``.pkl`` is code. :func:`load_array` reads
one with an unpickler whose :meth:`~pickle.Unpickler.find_class` resolves only the few numpy names
an ndarray's pickle refers to (the array reconstructor, ``numpy.ndarray``, ``numpy.dtype``, the
byte containers) and refuses everything else before anything is called, so a malicious pickle
fails with a one-line error instead of running. What comes out must then be a real, numeric,
2-D array.

:func:`dump_array` writes the other way round: an array pickled by numpy >= 2 names
``numpy._core.multiarray``, which numpy 1.x (what BalanceMM's pinned environment has, numba 0.59
needs numpy < 1.27) cannot import. So the array is reduced to ``numpy.ndarray(shape, dtype,
buffer=bytearray)``: only ``numpy.ndarray``, ``numpy.dtype`` and ``builtins.bytearray`` are named,
names every numpy version has, and the result is an ordinary writable C-ordered array. Same
array, same bytes.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

from mmcurate.common.errors import MMCurateError

#: Pickle protocol of written arrays (Python >= 3.4 reads it; BINBYTES8 keeps large buffers one opcode).
PROTOCOL = 4


def _numpy_reconstructors() -> dict[tuple[str, str], Any]:
    """The callables numpy's own ndarray pickles name, under every module path numpy has used.

    They are taken from this numpy's reduction of an array (``__reduce_ex__``), not imported by
    name, so numpy 1.x pickles (``numpy.core...``) load on numpy 2 without its deprecation shim.
    """
    sample = np.zeros(1, dtype=np.float32)
    reconstruct = sample.__reduce_ex__(2)[0]
    frombuffer = sample.__reduce_ex__(5)[0]

    def checked_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not np.ndarray:  # a subclass would run its own code
            raise pickle.UnpicklingError("the pickle rebuilds an ndarray subclass, not a plain array")
        return reconstruct(subtype, shape, dtype)

    allowed: dict[tuple[str, str], Any] = {}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = checked_reconstruct
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    for module in ("builtins", "__builtin__"):
        allowed[(module, "bytearray")] = bytearray
    allowed[("_codecs", "encode")] = _latin1_encode  # how protocol-2 pickles spell bytes
    return allowed


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` restricted to what pickles use it for: bytes spelled as latin-1 text."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} is not how an array's bytes are pickled")
    return text.encode("latin1")


_ALLOWED = _numpy_reconstructors()


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the names a numpy array's pickle refers to."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which is not part of a numpy array") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("it uses persistent ids (a torch.save file?), not a plain pickled array")


def load_array(data: bytes, what: str) -> np.ndarray:
    """The 2-D numeric array pickled in ``data``; anything else is a one-line error naming ``what``.

    Nothing but numpy's array reconstruction is ever called, whatever the file holds.
    """
    try:
        obj = ArrayUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as exc:
        raise MMCurateError(f"{what}: not a pickled numpy array ({exc}); only numpy arrays are read") from None
    except Exception as exc:  # truncated or garbled files raise EOFError, ValueError, struct errors...
        raise MMCurateError(f"{what}: unreadable pickle ({type(exc).__name__}: {exc})"[:300]) from None
    if not isinstance(obj, np.ndarray) or type(obj) is not np.ndarray:
        raise MMCurateError(f"{what}: the pickle holds a {type(obj).__name__}, not a numpy array")
    if obj.dtype.kind not in "fiu":
        raise MMCurateError(f"{what}: the array has dtype {obj.dtype}, expected real numbers")
    if obj.ndim != 2 or 0 in obj.shape:
        raise MMCurateError(f"{what}: the array has shape {obj.shape}, expected a 2-D spectrogram (bins x time)")
    return obj


def dump_array(array: np.ndarray) -> bytes:
    """``array`` pickled so that numpy 1.x and 2.x both load it as a writable C-ordered ndarray."""
    arr = np.ascontiguousarray(array)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"dump_array writes real-valued arrays, not {arr.dtype}")
    buf = io.BytesIO()
    _ArrayPickler(buf, protocol=PROTOCOL).dump(arr)
    return buf.getvalue()


class _ArrayPickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is np.ndarray:
            # dtype.str is '<f4'-like: byte order explicit, so the bytes mean the same on any machine
            return np.ndarray, (obj.shape, np.dtype(obj.dtype.str), bytearray(obj.tobytes()))
        return NotImplemented
