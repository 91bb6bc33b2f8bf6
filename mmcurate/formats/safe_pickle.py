"""Pickled numpy arrays, read without trusting the pickle and written so that any numpy can read them.

The field ships spectrograms as pickles (a BalanceMM release holds one ``.pkl`` per clip). Unpickling
runs whatever callables the file names, so a downloaded ``.pkl`` is code. :func:`load_array` reads
one with an unpickler whose :meth:`~pickle.Unpickler.find_class` resolves only the few numpy names
an ndarray's pickle refers to (the array reconstructor, ``numpy.ndarray``, ``numpy.dtype``, the
byte containers) and refuses everything else before anything is called, so a malicious pickle
fails with a one-line error instead of running. What comes out must then be a real, numeric,
2-D array.

The allowed callables are wrapped so that no pickle can make them allocate more than the pickle
itself holds: an array is only ever built over bytes the file contains (never ``numpy.ndarray(shape)``
without a buffer, never with strides, so no zero-stride view of a few bytes that claims to be
terabytes), ``_reconstruct`` only makes the empty array numpy's pickles start from, and
``bytearray`` only copies bytes (``bytearray(10**9)`` would allocate a gigabyte).

:func:`dump_array` writes the other way round: an array pickled by numpy >= 2 names
``numpy._core.multiarray``, which numpy 1.x (what BalanceMM's pinned environment has, numba 0.59
needs numpy < 1.27) cannot import. So the array is reduced to ``numpy.ndarray(shape, dtype,
buffer=bytearray)``: only ``numpy.ndarray``, ``numpy.dtype`` and ``builtins.bytearray`` are named,
names every numpy version has, and the result is an ordinary writable C-ordered array. Same
array, same bytes.
"""

from __future__ import annotations

import io
import math
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
        if subtype is _ndarray_over_bytes:  # how this unpickler resolves the name numpy.ndarray
            subtype = np.ndarray
        if subtype is not np.ndarray:  # a subclass would run its own code
            raise pickle.UnpicklingError("the pickle rebuilds an ndarray subclass, not a plain array")
        if _declared_elements(shape) != 0:  # numpy's pickles start from an empty array; the data comes next
            raise pickle.UnpicklingError(f"it declares an array of shape {_short(shape)} without its data")
        # the data comes by ndarray.__setstate__, which numpy does not check (an object dtype with a
        # short list crashes the interpreter): the state goes through _GuardedArray's checks first
        return reconstruct(_GuardedArray, shape, dtype)  # type: ignore[no-any-return]

    def checked_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
        if not isinstance(buf, (bytes, bytearray)):
            raise pickle.UnpicklingError("it builds an array without the bytes it holds")
        dt = _plain_numeric(dtype)
        if _declared_elements(shape) * dt.itemsize != len(buf):
            raise pickle.UnpicklingError(f"its shape {_short(shape)} does not match its {len(buf):,} bytes of data")
        return frombuffer(buf, dt, shape, order)  # type: ignore[no-any-return]

    allowed: dict[tuple[str, str], Any] = {}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = checked_reconstruct
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = checked_frombuffer
    allowed[("numpy", "ndarray")] = _ndarray_over_bytes
    allowed[("numpy", "dtype")] = _dtype_by_name
    for module in ("builtins", "__builtin__"):
        allowed[(module, "bytearray")] = _bytearray_of_bytes
    allowed[("_codecs", "encode")] = _latin1_encode  # how protocol-2 pickles spell bytes
    return allowed


class _GuardedArray(np.ndarray):
    """The empty array a numpy pickle starts from, whose ``__setstate__`` (the pickle's BUILD step)
    takes only real-number data of exactly the declared size; made a plain ndarray after loading."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("its array state is not numpy's")
        shape, dtype, rawdata = state[-4], state[-3], state[-1]
        dt = _plain_numeric(dtype)
        if not isinstance(rawdata, (bytes, bytearray)):
            raise pickle.UnpicklingError("its array data are not bytes (an object array?)")
        if _declared_elements(shape) * dt.itemsize != len(rawdata):
            raise pickle.UnpicklingError(
                f"its shape {_short(shape)} does not match its {len(rawdata):,} bytes of data"
            )
        super().__setstate__((*state[:-3], dt, *state[-2:]))


def _plain_numeric(dtype: Any) -> np.dtype:
    """``dtype`` rebuilt from its type string when it is a plain real number type (no objects,
    fields or sub-arrays, whatever state the pickle gave it); an UnpicklingError otherwise."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "fiu" or dtype.names is not None or dtype.subdtype:
        raise pickle.UnpicklingError(f"the array has dtype {str(dtype)[:60]}, expected real numbers")
    return np.dtype(dtype.str)


def _dtype_by_name(obj: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """``numpy.dtype`` from a type string, as numpy's pickles call it (``dtype('f4', False, True)``)."""
    if not isinstance(obj, str) or len(obj) > 16:
        raise pickle.UnpicklingError(f"it builds a dtype from {_short(obj)}, not a type name")
    return np.dtype(obj, bool(align), bool(copy))


def _declared_elements(shape: Any) -> int:
    """The element count a pickle's ``shape`` declares; an UnpicklingError for anything that is
    not a short tuple of non-negative integers."""
    dims = (shape,) if isinstance(shape, int) else shape
    if not isinstance(dims, tuple) or len(dims) > 32 or not all(type(d) is int and d >= 0 for d in dims):
        raise pickle.UnpicklingError(f"{_short(shape)} is not an array shape")
    return math.prod(dims)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _ndarray_over_bytes(shape: Any, dtype: Any = float, buffer: Any = None, offset: Any = 0, *rest: Any) -> np.ndarray:
    """``numpy.ndarray(shape, dtype, buffer)`` as :func:`dump_array` writes it, and nothing else: the
    array must lie over bytes the pickle holds, contiguously (no strides, no offset)."""
    if rest or offset != 0:
        raise pickle.UnpicklingError("it builds an array with strides or an offset, not plain contiguous data")
    if not isinstance(buffer, (bytes, bytearray)):
        raise pickle.UnpicklingError("it builds an array without the bytes it holds")
    count = _declared_elements(shape)
    dt = _plain_numeric(dtype if isinstance(dtype, np.dtype) else _dtype_by_name(dtype))
    if count * dt.itemsize != len(buffer):
        raise pickle.UnpicklingError(
            f"it declares {count:,} elements of {dt.itemsize} bytes over {len(buffer):,} bytes of data"
        )
    return np.ndarray(shape, dt, buffer)


def _bytearray_of_bytes(data: Any = b"", encoding: Any = None) -> bytearray:
    """``bytearray(b"...")`` (or the latin-1 text protocol 2 spells it as): a copy of bytes the pickle
    holds, never ``bytearray(n)`` (n zero bytes, allocated from one small integer)."""
    if isinstance(data, bytes) and encoding is None:
        return bytearray(data)
    if isinstance(data, str) and encoding in ("latin1", "latin-1"):
        return bytearray(data, "latin1")
    raise pickle.UnpicklingError("it calls bytearray with something other than the bytes it holds")


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
    if type(obj) is _GuardedArray:
        obj = obj.view(np.ndarray)
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
