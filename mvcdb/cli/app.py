"""The click group, lazy verb loading, and the one place errors become one-line messages.

Every verb lives in its own module `mvcdb/cli/cmd_<verb>.py` exposing a click command named
`command`. VERBS below maps verb -> (module, short help) so `--help` needs no imports.
Exit codes: 0 success, 1 an error (one line on stderr), 2 bad usage. MVCDB_DEBUG=1 shows tracebacks.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

#: verb -> (module under mvcdb.cli, one-line help shown by `mvcdb --help`)
VERBS: dict[str, tuple[str, str]] = {
    "init": ("cmd_init", "Create a database (idempotent)."),
    "demo": ("cmd_demo", "Record the linear-regression walk-through into the database."),
    "log": ("cmd_log", "List versions, newest first (--graph draws the lineage)."),
    "show": ("cmd_show", "Everything about one version."),
    "diff": ("cmd_diff", "What changed between two versions."),
    "tree": ("cmd_tree", "The lineage tree of a version or a model."),
    "tag": ("cmd_tag", "Point a tag at a version, or delete it (--delete)."),
    "tags": ("cmd_tags", "List tags, or one tag's history (--history NAME)."),
    "restore": ("cmd_restore", "Write a version's parameters to .npz or .safetensors."),
    "record": ("cmd_record", "Record a version from an .npz file."),
    "sql": ("cmd_sql", "Run a read-only SQL query."),
    "verify": ("cmd_verify", "Check the file's integrity; non-zero exit on any problem."),
    "gc": ("cmd_gc", "Reclaim unreferenced chunks and compact the file."),
    "rm": ("cmd_rm", "Delete a version (one without children unless --force)."),
    "stats": ("cmd_stats", "Counts, file size, logical vs stored bytes."),
    "merge": ("cmd_merge", "Copy in everything another mvcdb file has that this one lacks."),
    "export": ("cmd_export", "Write chosen versions and their ancestors to a bundle .db."),
    "tui": ("cmd_tui", "Browse, compare and restore versions in the terminal UI."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported only when invoked (fast --help, no numpy at start)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [v for v, (mod, _) in VERBS.items() if _module_exists(mod)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = VERBS.get(cmd_name)
        if entry is None or not _module_exists(entry[0]):
            return None
        if ctx.resilient_parsing or _only_listing(ctx):
            return click.Command(cmd_name, help=entry[1], short_help=entry[1])
        module = importlib.import_module(f"mvcdb.cli.{entry[0]}")
        command: click.Command = module.command
        return command


def _module_exists(module: str) -> bool:
    here = os.path.dirname(__file__)
    return os.path.exists(os.path.join(here, f"{module}.py"))


def _only_listing(ctx: click.Context) -> bool:
    """True while the group's own --help is being formatted (commands need only their help text)."""
    return bool(ctx.meta.get("mvcdb.listing"))


class _Group(LazyGroup):
    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        ctx.meta["mvcdb.listing"] = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            ctx.meta["mvcdb.listing"] = False


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False),
    envvar="MVCDB_PATH",
    default="mvcdb.db",
    show_default="$MVCDB_PATH or ./mvcdb.db",
    help="The database file.",
)
@click.version_option(package_name="mvcdb", prog_name="mvcdb")
@click.pass_context
def cli(ctx: click.Context, db_path: str) -> None:
    """mvcdb — an embedded model-version database (git + SQLite for trained models).

    Record every trained version of a model with its parameters, metrics, metadata and
    training trajectory in one shareable .db file; diff, browse and restore any of them.

    Shell completion: eval "$(_MVCDB_COMPLETE=bash_source mvcdb)" (zsh_source, fish_source).
    """
    ctx.ensure_object(dict)
    ctx.obj["db_path"] = db_path


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: run the CLI, turning mvcdb errors into one-line messages."""
    debug = os.environ.get("MVCDB_DEBUG", "") not in ("", "0")
    try:
        return cli.main(args=argv, prog_name="mvcdb", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # noqa: BLE001 - the one place where errors become messages
        if debug:
            raise
        from mvcdb.errors import MvcdbError

        if isinstance(exc, MvcdbError):
            message = str(exc)
        elif isinstance(exc, OSError):
            message = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
        else:
            message = f"internal error ({type(exc).__name__}: {exc}); rerun with MVCDB_DEBUG=1"
        click.echo(f"mvcdb: error: {' '.join(message.split())}", err=True)
        sys.exit(1)
