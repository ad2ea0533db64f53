"""Team remotes: a PostgreSQL database used git-style as the shared home of a team's versions.

Modules: `urls` (remote URLs and the `remotes` table; no driver needed), `pg` (connecting and the
remote schema, `schema_pg.sql`), `transfer` (push, pull, clone, lazy fetching; versions are checked
and inserted locally by the core `mvcdb.copying`, shared with merging), `chunks` (storing fetched
chunks and lazy clones' stub rows), `localpg` (a throwaway loopback cluster for tests and
benchmarks). Importing this package does not import the driver (psycopg 3, the `mvcdb[postgres]`
extra): only connecting does.
"""
