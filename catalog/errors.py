"""Error types. Every message names the offending input and the reason."""


class RereadError(Exception):
    """Base class for errors Reread reports to the user (the CLI prints them without a traceback)."""


class ConfigError(RereadError):
    """An invalid variant or settings file: the message names the file, the field and the reason."""


class CatalogLockedError(RereadError):
    """Another process holds the catalog's write lock."""


class CatalogSchemaError(RereadError):
    """The catalog file was written by an incompatible schema version."""


class ArtifactError(RereadError):
    """A stored artifact (index, embedding shard, manifest) is missing, corrupted or inconsistent."""


class StorageError(RereadError):
    """The data dir's filesystem refused a write (full disk, quota): retrying cannot help until space is freed."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether an exception (or one it was raised from) says the disk or quota is full, whatever library raised it
    (OSError errno, Arrow, DuckDB and faiss put the system's message in their text)."""
    import errno

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
