"""`mvcdb tags`: every tag and the version it names; `--history NAME`: every move of one tag."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .context import complete_tag, json_option, open_db
from .output import emit_json, emit_table, format_metrics, format_time, one_line

if TYPE_CHECKING:
    from mvcdb.models import TagMove


@click.command("tags")
@click.option(
    "--history",
    "history",
    metavar="NAME",
    shell_complete=complete_tag,
    help="Show every move of this tag (who, when, from, to), oldest first.",
)
@json_option
@click.pass_context
def command(ctx: click.Context, history: str | None, as_json: bool) -> None:
    """List tags and the versions they point at, or one tag's history (--history NAME).

    \b
    --json shapes:
      tags             [{"name", "id", "short_id", "model", "created_at", "message"}]
      tags --history   [{"name", "from", "to", "author", "at"}]  (from/to null = created/deleted)
    """
    db = open_db(ctx, readonly=True)
    if history is not None:
        _history(db.tag_history(history), history, as_json)
        return
    tags = db.tags()
    versions = {v.id: v for v in (db.get(i) for i in set(tags.values()))}
    if as_json:
        emit_json(
            [
                {
                    "name": name,
                    "id": vid,
                    "short_id": versions[vid].short_id,
                    "model": versions[vid].model,
                    "created_at": versions[vid].to_dict()["created_at"],
                    "message": versions[vid].message,
                }
                for name, vid in tags.items()
            ]
        )
    elif not tags:
        click.echo("No tags yet (mvcdb tag REF NAME).")
    else:
        emit_table(
            ["tag", "id", "model", "created (UTC)", "metrics", "message"],
            [
                (
                    name,
                    versions[vid].short_id,
                    versions[vid].model,
                    format_time(versions[vid].created_at),
                    format_metrics(versions[vid].metrics),
                    one_line(versions[vid].message),
                )
                for name, vid in tags.items()
            ],
        )


def _history(moves: list[TagMove], name: str, as_json: bool) -> None:
    """The moves of one tag, oldest first; a tag that never existed is an error."""
    from mvcdb.errors import RefError

    if not moves:
        raise RefError(f"no tag named {name!r} has ever existed")
    if as_json:
        emit_json([m.to_dict() for m in moves])
        return
    emit_table(
        ["at (UTC)", "author", "from", "to"],
        [
            (
                format_time(m.at),
                m.author,
                m.from_id[:12] if m.from_id else "(new)",
                m.to_id[:12] if m.to_id else "(deleted)",
            )
            for m in moves
        ],
    )
