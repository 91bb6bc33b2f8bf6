"""A stage's options, written once: a config dataclass whose fields carry their command-line help.

Each stage declares its settings as a frozen dataclass; :func:`opt` gives a field its default and
its ``--help`` text. From that one declaration:

* :func:`click_options` generates the command's click options (and positional arguments), in
  field order, with types taken from the annotations (``int``, ``float``, ``str``, ``bool`` flags,
  ``Path``, ``X | None``, ``tuple[str, ...]`` for repeatable options, ``dict[str, str]`` for
  repeatable ``KEY=VALUE`` options), so a default is never written twice;
* :func:`from_cli` builds the config from click's keyword arguments;
* :func:`from_mapping` builds it from a recipe section (``mmcurate run``), whose keys are the
  long option names with dashes as underscores, with unknown keys and mistyped values refused in
  one line.

A field whose type is itself a config dataclass is flattened: its fields become options of the
same command (ingest's decode settings, every stage's execution settings).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import click

from mmcurate.common.errors import MMCurateError

_META = "mmcurate.option"
#: Largest seed: every generator mmcurate seeds (numpy's legacy one, torch's, the per-job seeds
#: derived from it) takes it, and 2**32 seeds are more than any comparison runs.
MAX_SEED = 2**32 - 1
_NESTED = "mmcurate.nested"


def opt(
    default: Any = dataclasses.MISSING,
    help: str = "",  # noqa: A002 - click's name for it
    *,
    flag: str | None = None,
    argument: bool = False,
    required: bool = False,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
    envvar: str | None = None,
    show_default: bool | str | None = None,
    hidden: bool = False,
    cli: bool = True,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
) -> Any:
    """A config field with its command-line face.

    ``flag`` overrides the long option name (default ``--field-name``); ``argument`` makes it a
    positional argument; ``cli=False`` keeps a field out of the command line (set by code only).
    """
    meta = {
        _META: {
            "help": help,
            "flag": flag,
            "argument": argument,
            "required": required,
            "choices": choices,
            "metavar": metavar,
            "envvar": envvar,
            "show_default": show_default,
            "hidden": hidden,
            "cli": cli,
        }
    }
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def check_seed(flag: str, value: int) -> None:
    """A one-line error unless ``value`` is a seed every generator takes (0 to :data:`MAX_SEED`)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise MMCurateError(f"{flag} must be an integer from 0 to {MAX_SEED} (got {str(value)[:40]})")


def nested(factory: Callable[[], Any], skip: tuple[str, ...] = ()) -> Any:
    """A config field holding another config, whose options join the command's (``skip`` leaves some out,
    e.g. a setting the outer config decides)."""
    return dataclasses.field(default_factory=factory, metadata={_NESTED: {"skip": skip}})


# ------------------------------------------------------------------------------------------ fields


@dataclasses.dataclass(frozen=True)
class OptionField:
    """One command-line option (or argument) of a config class, and where it lands."""

    path: tuple[str, ...]  # attribute path from the top config (nested configs flattened)
    name: str  # the field name
    key: str  # recipe key / click parameter name: the long option name with dashes as underscores
    flag: str  # "--frames" (or the argument's name)
    base: Any  # int, float, str, bool, Path, tuple, dict
    optional: bool
    default: Any
    meta: dict[str, Any]

    @property
    def is_flag(self) -> bool:
        return self.base is bool

    @property
    def multiple(self) -> bool:
        return self.base in (tuple, dict)


def option_fields(cls: type, prefix: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> Iterator[OptionField]:
    """The command-line fields of ``cls`` in declaration order, nested configs flattened."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if f.name in skip:
            continue
        if dataclasses.is_dataclass(hint):
            inner_skip = tuple(f.metadata.get(_NESTED, {}).get("skip", ()))
            yield from option_fields(hint, (*prefix, f.name), inner_skip)  # type: ignore[arg-type]
            continue
        meta = f.metadata.get(_META)
        if meta is None or not meta["cli"]:
            continue
        base, optional = _base_type(hint)
        flag = meta["flag"] or ("--" + f.name.replace("_", "-"))
        key = flag.lstrip("-").replace("-", "_") if not meta["argument"] else f.name
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
            )
        )
        yield OptionField((*prefix, f.name), f.name, key, flag, base, optional, default, meta)


def _base_type(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        base, _ = _base_type(args[0]) if len(args) == 1 else (str, False)
        return base, True
    if origin is tuple or hint is tuple:
        return tuple, False
    if origin is dict or hint is dict:
        return dict, False
    if hint in (int, float, str, bool, Path):
        return hint, False
    if hint is Any:
        return str, True
    raise TypeError(f"unsupported option type {hint!r}")


# ------------------------------------------------------------------------------------------ click


def click_options(*classes: type, skip: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator adding every option of ``classes`` (in declaration order) to a click command."""
    fields = [f for cls in classes for f in option_fields(cls) if f.key not in skip]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for f in reversed(fields):
            fn = _click_param(f)(fn)
        return fn

    return decorate


def _click_param(f: OptionField) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    meta = f.meta
    kind: Any
    if meta["choices"]:
        kind = click.Choice(meta["choices"])
    elif f.base is Path:
        kind = click.Path(path_type=Path)
    elif f.base in (int, float, str):
        kind = f.base
    else:
        kind = None
    if meta["argument"]:
        return click.argument(f.key, type=kind, required=meta["required"], metavar=meta["metavar"])
    kwargs: dict[str, Any] = {"help": meta["help"], "hidden": meta["hidden"]}
    if meta["metavar"]:
        kwargs["metavar"] = meta["metavar"]
    if meta["envvar"]:
        kwargs["envvar"] = meta["envvar"]
    if meta["show_default"] is not None:
        kwargs["show_default"] = meta["show_default"]
    if f.is_flag and f.default is not False:  # on (or automatic) by default: an on/off pair (--augment/--no-augment)
        name = f.flag.removeprefix("--")
        return click.option(f"{f.flag}/--no-{name}", f.key, default=f.default, **kwargs)
    if f.is_flag:
        kwargs.update(is_flag=True, default=bool(f.default))
    elif f.multiple:
        kwargs.update(multiple=True, type=kind or str)
        if f.base is dict:
            kwargs.setdefault("metavar", "KEY=VALUE")
    else:
        kwargs.update(type=kind, default=f.default, required=meta["required"])
        if f.default is None and meta["show_default"] is None:
            kwargs["show_default"] = False
    return click.option(f.flag, f.key, **kwargs)


def from_cli(cls: type, kwargs: Mapping[str, Any], **overrides: Any) -> Any:
    """``cls`` built from click's keyword arguments (plus ``overrides`` by field path, e.g. ``out=...``)."""
    values: dict[tuple[str, ...], Any] = {}
    for f in option_fields(cls):
        if f.key not in kwargs:
            continue
        value = kwargs[f.key]
        if f.base is dict:
            value = parse_key_values(value, f.flag)
        elif f.base is tuple:
            value = tuple(value or ())
        values[f.path] = value
    for name, value in overrides.items():
        values[tuple(name.split("."))] = value
    return _build(cls, values)


def parse_key_values(pairs: Any, flag: str) -> dict[str, str]:
    """``("a=1", "b=2")`` -> ``{"a": "1", "b": "2"}`` (a mapping passes through)."""
    if isinstance(pairs, Mapping):
        return {str(k): str(v) for k, v in pairs.items()}
    out: dict[str, str] = {}
    for pair in pairs or ():
        if "=" not in pair:
            raise MMCurateError(f"{flag} expects key=value (got {pair!r})")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _build(cls: type, values: Mapping[tuple[str, ...], Any], prefix: tuple[str, ...] = ()) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if (*prefix, f.name) in values:  # a value, or a whole nested config given by code
            kwargs[f.name] = values[(*prefix, f.name)]
        elif dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = _build(hints[f.name], values, (*prefix, f.name))  # type: ignore[arg-type]
    return cls(**kwargs)


# ------------------------------------------------------------------------------------------ recipes


def from_mapping(
    cls: type,
    section: Mapping[str, Any],
    where: str,
    *,
    command: str | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> Any:
    """``cls`` from a recipe section: keys are long option names with underscores (``sample_rate``).

    Unknown keys and values of the wrong type are one-line errors naming ``where`` (and the
    ``command`` whose options they should be); ``None`` leaves the default. ``fixed`` values (by
    field path, e.g. ``raw_dir``) are applied last.
    """
    if not isinstance(section, Mapping):
        raise MMCurateError(f"recipe {where}: expected a mapping of option: value, got {type(section).__name__}")
    fields = {f.key: f for f in option_fields(cls) if not f.meta["argument"]}
    values: dict[tuple[str, ...], Any] = {}
    for raw_key, value in section.items():
        key = str(raw_key).replace("-", "_")
        if key not in fields:
            valid = ", ".join(sorted(fields))
            of = f" of `mmcurate {command}`" if command else ""
            raise MMCurateError(f"recipe {where}: '{raw_key}' is not an option{of} (valid: {valid})")
        if value is None:
            continue
        values[fields[key].path] = coerce(fields[key], value, where)
    for name, value in (fixed or {}).items():
        values[tuple(name.split("."))] = value
    return _build(cls, values)


def coerce(f: OptionField, value: Any, where: str) -> Any:
    """A YAML value converted to the option's type, or a one-line error."""
    what = f"recipe {where}: '{f.key}'"
    if f.base is bool:
        if not isinstance(value, bool):
            raise MMCurateError(f"{what} is a flag; use true or false (got {value!r})")
        return value
    if f.base is dict:
        if not isinstance(value, Mapping):
            raise MMCurateError(f"{what} takes a mapping of key: value (got {value!r})")
        return {str(k): "" if v is None else _text(v) for k, v in value.items()}
    if f.base is tuple:
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, (dict, list)) for v in items):
            raise MMCurateError(f"{what} takes a list of values (got {value!r})")
        return tuple(_text(v) for v in items)
    if isinstance(value, (dict, list)):
        if isinstance(value, list) and f.base is str:
            return ",".join(_text(v) for v in value)  # comma lists: seeds, methods, edges
        raise MMCurateError(f"{what} takes a single value (got {value!r})")
    if f.meta["choices"] and _text(value) not in f.meta["choices"]:
        raise MMCurateError(f"{what} must be one of {', '.join(f.meta['choices'])} (got {value!r})")
    try:
        if f.base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if f.base is float:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if math.isnan(number):
                raise ValueError
            return number
    except (TypeError, ValueError):
        kind = "an integer" if f.base is int else "a number"
        raise MMCurateError(f"{what} must be {kind} (got {value!r})") from None
    if f.base is Path:
        return Path(_text(value))
    return _text(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
