"""`mvcdb demo`: run the linear-regression walk-through (mvcdb/demo.py) against --db."""

from __future__ import annotations

import click

from .context import db_path


@click.command("demo")
@click.pass_context
def command(ctx: click.Context) -> None:
    """Record the linear-regression walk-through (y = m·x + b by gradient descent).

    Fits m and b twice with different learning rates, logging m, b and the loss at every
    iteration; compares the versions, tags the better one production, rolls back, restores.
    """
    from mvcdb.demo import main

    given = ctx.find_root().get_parameter_source("db_path") == click.core.ParameterSource.COMMANDLINE
    main(str(db_path(ctx)) if given else None)  # None: the default file, named in no hint
