"""The project's errors: one base class, one subclass per kind of user-facing failure.

The CLI prints ``str(error)`` on one line and exits non-zero; the web app turns
the error into a JSON body with the status code held by the class.
"""


class GenrifyError(Exception):
    """Base class of every error genrify raises on purpose."""

    status_code = 400


class AudioDecodeError(GenrifyError):
    """The input could not be read or decoded as audio."""

    status_code = 415


class AudioTooShortError(GenrifyError):
    """The audio is shorter than the stated minimum duration."""

    status_code = 422


class InvalidAudioError(GenrifyError):
    """The audio decoded but its content is unusable (NaN/inf samples, no samples)."""

    status_code = 422


class ModelFileError(GenrifyError):
    """A model file is missing, truncated, tampered with or not a genrify model."""

    status_code = 500


class DatasetError(GenrifyError):
    """A dataset folder, manifest or index is missing or unusable."""


class ConfigError(GenrifyError):
    """A configuration value is invalid."""


class WriteError(GenrifyError):
    """An output file could not be written (no such folder, not writable, a folder in the way, disk full)."""

    status_code = 500


class ProviderError(GenrifyError):
    """A remote preview provider failed (offline, timeout, bad answer)."""

    status_code = 502


class NotFoundError(GenrifyError):
    """A requested song or track does not exist."""

    status_code = 404


class TagError(GenrifyError):
    """Tags cannot be read from or written to an audio file."""
