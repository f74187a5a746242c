"""genrify: tell the genre of a piece of music from its sound.

The package reads as the pipeline: ``sources`` → ``audio`` → ``features`` →
``dataset`` → ``models`` → ``train`` → ``evaluate`` → ``predict``, with ``cli``
and ``web`` as front doors. Heavy libraries are imported only where they are
used so that ``genrify --help`` starts quickly.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "GenreClassifier"]


def __getattr__(name):
    if name == "GenreClassifier":
        from genrify.predict import GenreClassifier

        return GenreClassifier
    raise AttributeError(name)
