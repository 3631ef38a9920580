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
