"""Turn a recipe section into a command's argument list, checked against the command's options."""

from __future__ import annotations

from typing import Any

import click

from mmcurate.common.errors import MMCurateError


def option_map(command: click.Command) -> dict[str, click.Option]:
    """Recipe key (underscored long option name) -> click option."""
    out: dict[str, click.Option] = {}
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in param.opts:
                if opt.startswith("--"):
                    out[opt[2:].replace("-", "_")] = param
    return out


def section_args(command: click.Command, section: dict[str, Any], where: str, skip: tuple[str, ...] = ()) -> list[str]:
    """``{sample_rate: 22050, tolerate_decode_errors: true}`` -> ``["--sample-rate", "22050", ...]``.

    Booleans become flags (false leaves them off), lists repeat a ``multiple`` option or are
    comma-joined otherwise, mappings become ``key=value`` items of a ``multiple`` option.
    """
    options = option_map(command)
    args: list[str] = []
    for key in sorted(section):
        if key in skip:
            continue
        value = section[key]
        if key not in options:
            valid = ", ".join(sorted(k for k in options if k not in ("help",)))
            raise MMCurateError(f"recipe {where}: '{key}' is not an option of `mmcurate {command.name}` (valid: {valid})")
        param = options[key]
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if param.is_flag:
            if value is True:
                args.append(flag)
            elif value is False and param.secondary_opts:  # an on/off pair such as --augment/--no-augment
                args.append(param.secondary_opts[0])
            elif value is not False:
                raise MMCurateError(f"recipe {where}: '{key}' is a flag; use true or false (got {value!r})")
            continue
        if isinstance(value, dict):
            items = [f"{k}={v}" for k, v in value.items()]
            if not param.multiple:
                raise MMCurateError(f"recipe {where}: '{key}' takes a single value, not a mapping")
            for item in items:
                args += [flag, item]
            continue
        if isinstance(value, list):
            if param.multiple:
                for item in value:
                    args += [flag, _text(item)]
            else:
                args += [flag, ",".join(_text(v) for v in value)]
            continue
        args += [flag, _text(value)]
    return args


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
