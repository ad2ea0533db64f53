"""The click group, lazy verb loading, and the one place errors become one-line messages.

Every verb lives in its own module `mvcdb/cli/cmd_<verb>.py` exposing a click command named
`command`. VERBS below maps verb -> (module, short help) so `--help` needs no imports.
Exit codes: 0 success, 1 an error (one line on stderr), 2 bad usage, 130 interrupted (Ctrl-C);
a reader closing the pipe early is not an error. MVCDB_DEBUG=1 shows tracebacks.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
from collections.abc import Callable
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
    "remote": ("cmd_remote", "Add, list or remove team remotes (PostgreSQL)."),
    "push": ("cmd_push", "Send a remote the versions, chunks and tags it lacks."),
    "pull": ("cmd_pull", "Copy in what a remote has that this file lacks."),
    "clone": ("cmd_clone", "Create a new file from a remote (--lazy: no parameters)."),
    "fetch": ("cmd_fetch", "In a lazy clone, fetch parameters not fetched yet (offline use)."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported only when invoked (fast --help, no numpy at start)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [v for v, (mod, _) in VERBS.items() if _module_exists(mod)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = VERBS.get(cmd_name)
        if entry is None or not _module_exists(entry[0]):
            return None
        if _only_listing(ctx) or (ctx.resilient_parsing and not ctx.meta.get("mvcdb.resolving")):
            # listing verbs (--help, completing a verb name) needs only the one-line help
            return click.Command(cmd_name, help=entry[1], short_help=entry[1])
        module = importlib.import_module(f"mvcdb.cli.{entry[0]}")
        command: click.Command = module.command
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Descending into a verb (to run it, or to complete its arguments) loads the real command."""
        ctx.meta["mvcdb.resolving"] = True
        try:
            return super().resolve_command(ctx, args)
        finally:
            ctx.meta["mvcdb.resolving"] = False


def _module_exists(module: str) -> bool:
    here = os.path.dirname(__file__)
    return os.path.exists(os.path.join(here, f"{module}.py"))


def _only_listing(ctx: click.Context) -> bool:
    """True while the group's own --help is being formatted (commands need only their help text)."""
    return bool(ctx.meta.get("mvcdb.listing"))


#: ctx.meta key: the exit code a verb will end with, set before it prints (see _Group.invoke).
EXIT_CODE_KEY = "mvcdb.exit_code"


class _Interrupted(Exception):
    """Ctrl-C inside a verb, carried past click's main() (which would print "Aborted." and exit 1)."""


class _Group(LazyGroup):
    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        ctx.meta["mvcdb.listing"] = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            ctx.meta["mvcdb.listing"] = False

    def invoke(self, ctx: click.Context) -> Any:
        """Run the verb, settling what click's main() would otherwise blur.

        A closed pipe (`mvcdb log | head -1`) ends quietly with exit 0, or the code the verb set in
        ctx.meta[EXIT_CODE_KEY] before printing (click: exit 1, no message, and only when the
        output outgrew the pipe's buffer); Ctrl-C is `Interrupted.` and exit 130
        (click: a blank line, `Aborted.`, exit 1); and a usage error click's option parser raises
        without a context (`mvcdb tag --delete`) names the verb's --help, not the group's.
        A closed stdout (`mvcdb log >&-`) is refused before the verb does anything.
        """
        if sys.stdout is None:  # Python's stand-in for a closed descriptor 1
            raise click.ClickException("standard output is closed (to discard the output: >/dev/null)")
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            verb = ctx.invoked_subcommand
            if exc.ctx is None and verb:
                command = self.get_command(ctx, verb)
                if command is not None:
                    exc.ctx = click.Context(command, info_name=verb, parent=ctx)
            raise
        except KeyboardInterrupt:
            raise _Interrupted() from None
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            _silence_stdout()
            # a verb whose outcome is known before it prints (verify's problems) keeps its code
            raise click.exceptions.Exit(ctx.meta.get(EXIT_CODE_KEY, 0)) from None

    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the CLI; in standalone mode every failure becomes one line on stderr and an exit code.

        Living here (not only in `main()`) makes click's CliRunner see exactly what a shell sees.
        """
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        sys.exit(_run(lambda: super(_Group, self).main(args, prog_name, complete_var, False, **extra)))


@click.group("mvcdb", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
    """Console-script entry point: run the CLI (exits with 0, 1 on an error, 2 on bad usage)."""
    return cli.main(args=argv, prog_name="mvcdb")


def _debug() -> bool:
    return os.environ.get("MVCDB_DEBUG", "") not in ("", "0")


def fail(message: str, exit_code: int = 1) -> int:
    """Print `mvcdb: error: MESSAGE` as one line on stderr and return the exit code to use."""
    click.echo(f"mvcdb: error: {' '.join(str(message).split())}", err=True)
    return exit_code


def _run(invoke: Callable[[], Any]) -> int:
    """Call the non-standalone click main and turn every outcome into an exit code."""
    try:
        rv = invoke()
        return rv if isinstance(rv, int) else 0  # click returns Exit's code, or the command's value
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        return exc.exit_code
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "mvcdb"
        return fail(f"{exc.format_message().rstrip('.')} (see '{where} --help')", exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.ClickException as exc:
        return fail(exc.format_message(), exc.exit_code)
    except (KeyboardInterrupt, _Interrupted):
        click.echo("Interrupted.", err=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place where errors become messages
        if _debug():
            raise
        return fail(_describe(exc))


def _describe(exc: Exception) -> str:
    """The one-line message for an exception that escaped a verb."""
    from mvcdb.errors import MvcdbError

    if isinstance(exc, MvcdbError):
        return str(exc)
    if isinstance(exc, UnicodeEncodeError) and "surrogate" in exc.reason:
        return _not_unicode(exc.object)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    import sqlite3

    if isinstance(exc, sqlite3.Error):
        if isinstance(exc, sqlite3.DatabaseError) and "malformed" in str(exc):
            return f"SQLite: {exc} (the file is damaged: `mvcdb verify` names what is wrong)"
        return f"SQLite: {exc}"
    return f"internal error ({type(exc).__name__}: {exc}); rerun with MVCDB_DEBUG=1 to see where"


def _not_unicode(text: str) -> str:
    """The message for an argument holding bytes that are not UTF-8 (a Latin-1 name in a shell
    variable reaches Python as lone surrogates, which SQLite cannot bind): shown as those bytes."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that did not come from undecodable bytes
        raw = text.encode("utf-8", "backslashreplace")
    shown = raw.decode("utf-8", "backslashreplace")
    if len(shown) > 60:
        shown = shown[:59] + "…"
    return f"'{shown}' is not valid UTF-8 text (refs, names, messages and queries must be)"


def _silence_stdout() -> None:
    """After the reader of a pipe went away (`mvcdb log | head`), drop further output quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
