"""The exceptions mvcdb raises: every one derives from MvcdbError so callers can catch one type."""

from __future__ import annotations


class MvcdbError(Exception):
    """Base class of every error mvcdb raises on purpose (bad input, bad file, bad ref)."""


class RefError(MvcdbError, LookupError):
    """A ref (id, prefix, tag, MODEL@latest, REF~N) names no version, or more than one."""


class NotAnMvcdbFileError(MvcdbError):
    """The file is not SQLite, or is a SQLite database of some other application."""


class SchemaVersionError(MvcdbError):
    """The file was written by a newer mvcdb whose schema this version cannot read."""


class IntegrityError(MvcdbError):
    """Stored bytes no longer match their hash, or a manifest is incomplete."""


class DecodeError(MvcdbError, ValueError):
    """A serialized blob is malformed, lies about its sizes, or is too large to decode."""


class ReadOnlyError(MvcdbError):
    """A write was attempted on a database opened read-only (or on read-only media)."""


class BusyError(MvcdbError):
    """The database stayed locked by other writers longer than the busy timeout."""
