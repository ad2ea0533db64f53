"""Remote URLs and the `remotes` table: named PostgreSQL URLs, stored without passwords.

A URL is checked (postgresql:// or postgres://, a sane port) and any password is removed before it
is stored or shown; credentials come from libpq's usual sources at connection time (PGPASSWORD,
~/.pgpass, a service file). Needs no database driver, so `remote add/list/remove` work without it.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from ..chunkcodec import STUB
from ..connection import write_transaction
from ..errors import MvcdbError
from ..timeutil import now_text

SCHEMES = ("postgresql", "postgres")
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")
DEFAULT_REMOTE = "origin"
#: Text that starts like a URL (urlsplit skips leading spaces too); redact() reads anything else
#: after _BARE_SCHEME, so that urlsplit finds a user:password@ in it.
_SCHEME_RE = re.compile(r"\s*[A-Za-z][A-Za-z0-9+.\-]*://")
_BARE_SCHEME = "bare://"


@dataclass(frozen=True)
class Remote:
    """A named remote as stored in the .db (its URL never holds a password)."""

    name: str
    url: str
    created_at: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "url": self.url, "created_at": self.created_at}


def is_url(text: str) -> bool:
    """True if text looks like a URL (scheme://...) rather than a remote name."""
    return "://" in text


def check_url(url: str) -> str:
    """Validate a PostgreSQL URL; return it unchanged. Raise MvcdbError with a one-line reason."""
    if not isinstance(url, str) or not url.strip():
        raise MvcdbError("empty remote URL (expected postgresql://[user@]host[:port]/dbname)")
    if any(ord(c) < 32 for c in url):
        raise MvcdbError("invalid remote URL: it contains control characters")
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise MvcdbError(f"invalid remote URL {redact(url)!r}: {exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise MvcdbError(
            f"not a PostgreSQL URL: {redact(url)!r} (expected postgresql://[user@]host[:port]/dbname)"
        )
    hostport = parts.netloc.rpartition("@")[2]
    for host in hostport.split(","):
        if host.startswith("["):  # IPv6 literal
            port = host.rpartition("]")[2].lstrip(":")
        else:
            port = host.partition(":")[2]
        if port and (not port.isdigit() or not 0 < int(port) < 65536):
            raise MvcdbError(f"invalid remote URL {redact(url)!r}: bad port {port!r}")
    # a service (PGSERVICE file entry), host or dbname parameter can name what the URL does not
    given = {k.lower() for k, v in parse_qsl(parts.query) if v}
    if not hostport and parts.path in ("", "/") and not given & {"host", "hostaddr", "dbname", "service"}:
        raise MvcdbError(f"invalid remote URL {redact(url)!r}: no host and no database name")
    return url.strip()


#: libpq URL parameters that hold a secret: never stored, never shown.
SECRET_PARAMS = frozenset({"password", "sslpassword"})


def strip_password(url: str) -> str:
    """The URL without any password (in the user-info part, or as a `password=` or `sslpassword=`
    parameter: the key of a client certificate is a credential too)."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at:
        user = userinfo.partition(":")[0]
        netloc = f"{user}@{hostport}" if user else hostport
    else:
        netloc = parts.netloc
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() not in SECRET_PARAMS
    ]
    return _unsplit(parts.scheme, netloc, parts.path, urlencode(query, quote_via=quote))


def redact(url: str) -> str:
    """The URL for messages: as given, with any password replaced by ***.

    Text without a scheme (a bare word, a path, user:pw@host/db) is read as if it had one, so a
    password in it is hidden too, and is quoted without the scheme it never had.
    """
    if "@" not in url and "password" not in url.lower():
        return url  # no place for a password: show exactly what was given
    bare = not _SCHEME_RE.match(url)
    try:
        parts = urlsplit(_BARE_SCHEME + url if bare else url)
    except ValueError:
        return "<unparsable URL>"
    userinfo, at, hostport = parts.netloc.rpartition("@")
    query = parse_qsl(parts.query, keep_blank_values=True)
    has_password = any(k.lower() in SECRET_PARAMS for k, _ in query)
    if not (at and ":" in userinfo) and not has_password:
        return url
    netloc = f"{userinfo.partition(':')[0]}:***@{hostport}" if at and ":" in userinfo else parts.netloc
    shown = _unsplit(
        parts.scheme,
        netloc,
        parts.path,
        "&".join(f"{k}=***" if k.lower() in SECRET_PARAMS else f"{k}={v}" for k, v in query),
    )
    return shown.removeprefix(_BARE_SCHEME) if bare else shown


def _unsplit(scheme: str, netloc: str, path: str, query: str) -> str:
    """Join URL parts, keeping `scheme://` even with no host (urlunsplit would drop the //)."""
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")


def label(remote: str | None) -> str:
    """How to name a remote (name or URL, None = the default) in messages: never with a password."""
    if remote is None:
        return DEFAULT_REMOTE
    return redact(remote) if is_url(remote) else remote


def user_of(url: str) -> str:
    """The user name in the URL ('' when libpq should pick it)."""
    userinfo, at, _ = urlsplit(url).netloc.rpartition("@")
    return unquote(userinfo.partition(":")[0]) if at else ""


def check_name(name: str) -> str:
    """Remote names: letters, digits, _ . - (no spaces, no '://'), at most 64 characters."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise MvcdbError(f"invalid remote name {name!r}: use letters, digits, _ . - (at most 64)")
    return name


def add(conn: sqlite3.Connection, name: str, url: str) -> Remote:
    """Store a remote (password removed); an existing name is an error."""
    check_name(name)
    clean = strip_password(check_url(url))
    with write_transaction(conn):
        if conn.execute("SELECT 1 FROM remotes WHERE name = ?", (name,)).fetchone():
            raise MvcdbError(f"a remote named {name!r} already exists (remove it first)")
        at = now_text()
        conn.execute("INSERT INTO remotes (name, url, created_at) VALUES (?, ?, ?)", (name, clean, at))
    return Remote(name, clean, at)


def remove(conn: sqlite3.Connection, name: str) -> None:
    """Forget a remote (nothing on the server is touched). A lazy clone keeps the name it fetches
    from while chunks are still to fetch: a remote added again under that name (the server
    moved) then serves them; dropped, they could never be fetched."""
    with write_transaction(conn):
        if conn.execute("DELETE FROM remotes WHERE name = ?", (name,)).rowcount == 0:
            raise MvcdbError(f"no remote named {name!r}")
        if not conn.execute(f"SELECT 1 FROM chunks WHERE codec = {STUB} LIMIT 1").fetchone():
            conn.execute("DELETE FROM meta WHERE key = 'lazy_remote' AND value = ?", (name,))


def list_remotes(conn: sqlite3.Connection) -> list[Remote]:
    """Every stored remote, by name."""
    return [Remote(*r) for r in conn.execute("SELECT name, url, created_at FROM remotes ORDER BY name")]


def resolve(conn: sqlite3.Connection, remote: str | None) -> tuple[str | None, str]:
    """(name, url) for a remote name or a URL; None picks 'origin' or the only remote there is."""
    if remote is not None and is_url(remote):
        return None, check_url(remote)
    stored = {r.name: r.url for r in list_remotes(conn)}
    if remote is None:
        if DEFAULT_REMOTE in stored:
            remote = DEFAULT_REMOTE
        elif len(stored) == 1:
            remote = next(iter(stored))
        elif not stored:
            raise MvcdbError("no remote configured (mvcdb remote add origin postgresql://host/dbname)")
        else:
            raise MvcdbError(f"several remotes and none is 'origin': name one of {', '.join(sorted(stored))}")
    if remote not in stored:
        raise MvcdbError(f"no remote named {remote!r} (see `mvcdb remote list`)")
    return remote, stored[remote]
