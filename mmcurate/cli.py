"""The ``mmcurate`` command line.

Each stage defines its own click command in ``mmcurate/<stage>/cli.py``; this module lists them from
the registry (:mod:`mmcurate.stages`) and loads each one when it is invoked, so ``mmcurate --help`` is
fast and a stage's heavy imports (torch, datasets) are paid only by the commands that need them.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from mmcurate import __version__
from mmcurate.common.errors import MMCurateError
from mmcurate.stages import REGISTRY

#: command name -> ("module:attribute", one-line help shown by ``mmcurate --help``): every stage of the
#: registry (:mod:`mmcurate.stages`), then the commands that run several stages
COMMANDS: dict[str, tuple[str, str]] = {
    **{e.name: (e.command, e.summary) for e in REGISTRY},
    "run": (
        "mmcurate.pipeline.cli:run",
        "Run a YAML recipe: ingest -> score -> balance -> export (-> push) (-> reeval).",
    ),
    "demo": (
        "mmcurate.demo.cli:demo",
        "Generate a small synthetic audio-visual set and run the whole pipeline on it.",
    ),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, _, attr = COMMANDS[cmd_name][0].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # a trimmed-down build without this stage
                return _unavailable(cmd_name)
            raise
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _unavailable(name: str) -> click.Command:
    @click.command(name=name, help=f"({name} is not available in this build)")
    def _cmd() -> None:
        raise MMCurateError(f"the '{name}' command is not available in this build of mmcurate")

    return _cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mmcurate")
@click.option(
    "--workdir",
    metavar="DIR",
    default=None,
    help="Work directory for the command that follows (before it or after it: `mmcurate --workdir X score` "
    "is `mmcurate score --workdir X`; given after the command too, that one wins). Default: $MMCURATE_WORKDIR, "
    "else ./mmcurate-work.",
)
def cli(workdir: str | None) -> None:
    """Build modality-balanced audio-visual datasets and re-evaluate imbalance algorithms.

    \b
    Typical flow (a work directory, ./mmcurate-work by default, holds each stage's output):
      mmcurate ingest raw/                 decode clips into Arrow shards + manifest
      mmcurate balance --bins 10           score discrepancy if needed, sample uniformly, export
      mmcurate push --repo-id ORG/NAME     publish Parquet shards + dataset card
      mmcurate reeval                      compare imbalance algorithms per subset
    Set the work directory with --workdir (before or after the command) or $MMCURATE_WORKDIR.
    """
    if workdir is not None:  # every command resolves its work directory through this variable (store.workdir)
        os.environ["MMCURATE_WORKDIR"] = workdir


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: runs the CLI, turning user errors into one-line messages."""
    try:
        return cli.main(args=argv, prog_name="mmcurate", standalone_mode=False)
    except MMCurateError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted: rerun the same command to resume", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug: one line unless debugging
        if os.environ.get("MMCURATE_DEBUG"):
            raise
        click.echo(
            f"error: internal error ({type(exc).__name__}: {exc}); rerun with MMCURATE_DEBUG=1 for a traceback",
            err=True,
        )
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
