"""Which genre names to write: analyses (or an album of them) + the user's choices → names. Pure.

Everything here works on the JSON view of an analysis
(:meth:`~genrify.predict.classifier.Analysis.to_dict`): ``genres`` (every genre's
song probability, by canonical name), ``details.styles`` (``[style, genre, p]``
rows, when the model speaks the taxonomy) and ``verdict``. Names are spelt as the
taxonomy's display names, then the user's :class:`NameRules` apply (aliases,
ignore list, whitelist), and a name differing only in case from one already
chosen is dropped.

:func:`decide_tag` is the one rule for a genre the file already has, used by
``genrify predict --write-tags``, ``genrify tag`` and the beets plugin alike.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genrify.errors import ConfigError
from genrify.fileio import read_regular
from genrify.taxonomy import canonical_name

#: ``specific``: for each chosen genre, its surest style when one is sure enough, else the genre itself
#: (the most specific name only, as beets' lastgenre ``prefer_specific``).
LEVELS = ("genre", "style", "both", "specific")

#: What to do with a genre tag a file already has (one genrify did not write): see :func:`decide_tag`.
EXISTING = ("keep", "overwrite", "merge")

#: An album whose tracks agree with its mean genre less often than this is "unsure".
ALBUM_AGREEMENT = 0.5


@dataclass(frozen=True)
class NameRules:
    """The user's names: ``aliases`` (any case → the spelling to write), ``ignore`` (never written),
    ``whitelist`` (when not empty, only these are written). Alias keys are compared case-insensitively;
    ignore list and whitelist by genre, whatever the spelling (``hip hop`` in a whitelist lets ``Hip-Hop``
    through, as in beets' lastgenre genre list)."""

    aliases: dict[str, str] = field(default_factory=dict)
    ignore: frozenset[str] = frozenset()
    whitelist: frozenset[str] = frozenset()

    def apply(self, names: list[str]) -> list[str]:
        """``names`` renamed by the aliases, filtered by ignore list and whitelist, case duplicates dropped."""
        aliases = {k.casefold(): v for k, v in self.aliases.items()}
        ignore = set(_keys(list(self.ignore)))
        allowed = set(_keys(list(self.whitelist)))
        out, seen = [], set()
        for name in names:
            name = aliases.get(name.casefold(), name).strip()
            key = name.casefold()
            if not name or key in seen or _kept_out(name, ignore=ignore, allowed=allowed):
                continue
            seen.add(key)
            out.append(name)
        return out


def _kept_out(name: str, *, ignore: set[str], allowed: set[str]) -> bool:
    if not ignore and not allowed:  # no list: no canonical lookup on the hot path of a big library
        return False
    key = _keys([name])[0]
    return key in ignore or bool(allowed) and key not in allowed


#: How deeply a names file may nest: its own shape is two levels (``aliases`` → names).
NAMES_DEPTH = 8
#: The longest name a names file may hold (genre and style names are a few words).
MAX_NAME_CHARS = 100


def load_names(path: str | os.PathLike) -> NameRules:
    """The :class:`NameRules` of a YAML file with optional keys ``aliases`` (a mapping),
    ``ignore`` and ``whitelist`` (lists). Raises :class:`~genrify.errors.ConfigError` for a
    file that is missing, not a regular file of at most :data:`~genrify.fileio.MAX_SMALL_FILE_BYTES`,
    nested deeper than :data:`NAMES_DEPTH`, or not of that shape."""
    import yaml

    from genrify.fileio import read_small_text

    path = Path(path)
    try:
        text = read_small_text(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the names file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML names file (not UTF-8 text)") from None
    try:
        data = yaml.load(text, Loader=_names_loader()) or {}
    except _TooDeep:
        raise ConfigError(f"{path}: not a YAML names file (nested deeper than {NAMES_DEPTH})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not a YAML names file ({str(exc).splitlines()[0][:80]})") from None
    return names_from_mapping(data, source=str(path))


class _TooDeep(Exception):
    pass


@functools.cache
def _names_loader():
    """PyYAML's safe loader, refusing nodes nested deeper than :data:`NAMES_DEPTH` as it composes them
    (its composer recurses once per level: 50 000 levels would end in a ``RecursionError``)."""
    import yaml

    class Loader(yaml.SafeLoader):
        _depth = 0

        def compose_node(self, parent, index):
            self._depth += 1
            try:
                if self._depth > NAMES_DEPTH:
                    raise _TooDeep
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    return Loader


def names_from_mapping(data, *, source: str = "names") -> NameRules:
    """The :class:`NameRules` of a mapping shaped like the names YAML (also beets' plugin config).

    Every name must be text a terminal shows as it is (no control characters, line breaks or
    bidirectional overrides: see :func:`~genrify.fileio.terminal_safe`) of at most :data:`MAX_NAME_CHARS`.
    """
    if not isinstance(data, dict) or set(data) - {"aliases", "ignore", "whitelist"}:
        raise ConfigError(f"{source}: expected a mapping with keys aliases, ignore, whitelist")
    aliases, ignore, whitelist = data.get("aliases") or {}, data.get("ignore") or [], data.get("whitelist") or []
    if not isinstance(aliases, dict) or not all(isinstance(v, (str, int, float)) for v in aliases.values()):
        raise ConfigError(f"{source}: 'aliases' must map names to names")
    for key, value in (("ignore", ignore), ("whitelist", whitelist)):
        if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
            raise ConfigError(f"{source}: '{key}' must be a list of names")
    _check_names(("aliases", [*aliases, *aliases.values()]), ("ignore", ignore), ("whitelist", whitelist),
                 source=source)
    return NameRules(aliases={str(k): str(v) for k, v in aliases.items()},
                     ignore=frozenset(map(str, ignore)), whitelist=frozenset(map(str, whitelist)))


#: The largest name list read (:func:`read_name_list`): beets' own whitelist of every genre is ~20 KiB.
NAME_LIST_MAX_BYTES = 4 * 1024**2


def read_name_list(path: str | os.PathLike) -> frozenset[str]:
    """The names of a genre list file in beets' lastgenre form: one name per line, blank lines and
    lines starting with ``#`` ignored, surrounding spaces dropped. Read through the bounded reader
    (:func:`~genrify.fileio.read_regular`, at most :data:`NAME_LIST_MAX_BYTES`); a missing, unreadable,
    non-UTF-8 or empty file is a one-line :class:`~genrify.errors.ConfigError` naming it, since an
    empty whitelist would silently let every name through."""
    try:
        text = read_regular(path, max_bytes=NAME_LIST_MAX_BYTES).decode("utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the genre list ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a genre list (not UTF-8 text)") from None
    names = frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    if not names:
        raise ConfigError(f"{path}: the genre list names no genre")
    return names


def _check_names(*groups: tuple[str, list], source: str) -> None:
    # Names end up in tags and on the terminal: a name that would move the cursor or retitle it is no genre.
    from genrify.fileio import terminal_safe

    for key, names in groups:
        for name in map(str, names):
            if len(name) > MAX_NAME_CHARS or terminal_safe(name) != name:
                raise ConfigError(f"{source}: '{key}' holds {terminal_safe(name[:40])!r}…, which is not a genre name "
                                  f"(control characters, or over {MAX_NAME_CHARS} characters)")


#: A style is written when its probability (its genre's × its share of the genre) reaches this: a
#: stricter rule than the one for showing it (``STYLE_MIN_SHARE``), since a written tag stays.
STYLE_MIN_PROBABILITY = 0.3


@dataclass(frozen=True)
class ChoiceConfig:
    """What to write: ``level`` genre | style | both | specific (see :data:`LEVELS`); at most ``max`` names
    of each level; genres at or above ``min_certainty`` (probability); styles at or above ``min_style``
    under a chosen genre."""

    level: str = "genre"
    max: int = 1
    min_certainty: float = 0.5
    min_style: float = STYLE_MIN_PROBABILITY
    names: NameRules = field(default_factory=NameRules)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ConfigError(f"level must be one of {', '.join(LEVELS)}, not {self.level!r}")
        if self.max < 1:
            raise ConfigError(f"max must be at least 1, not {self.max}")
        if not 0.0 <= self.min_certainty <= 1.0:
            raise ConfigError(f"min_certainty must be between 0 and 1, not {self.min_certainty}")


@dataclass(frozen=True)
class Choice:
    """The names to write (genres then styles, as written) and what they rest on: ``certainty`` is the
    probability of ``top``, the most likely genre (display name), whether or not it is written."""

    genres: list[str]
    styles: list[str]
    certainty: float | None
    verdict: str
    top: str | None = None

    @property
    def names(self) -> list[str]:
        """Every name to write, case duplicates dropped."""
        return NameRules().apply(self.genres + self.styles)


def choose(analysis: dict, *, config: ChoiceConfig = ChoiceConfig()) -> Choice:
    """The names to write for one analysed song (the JSON view of its analysis)."""
    genres = {canonical_name(g): float(p) for g, p in (analysis.get("genres") or {}).items()}
    styles = [(canonical_name(s), canonical_name(g), float(p)) for s, g, p in
              (analysis.get("details") or {}).get("styles", ())]
    return _pick(genres, styles, analysis.get("verdict", "unsure"), config)


def _pick(genres: dict[str, float], styles: list, verdict: str, config: ChoiceConfig) -> Choice:
    ranked = sorted(genres.items(), key=lambda kv: -kv[1])
    certainty, best = (ranked[0][1], ranked[0][0]) if ranked else (None, None)
    if verdict != "genre" or certainty is None or certainty < config.min_certainty:
        return Choice([], [], certainty, verdict if verdict != "genre" else "unsure", best)
    top = config.names.apply([g for g, p in ranked if p >= config.min_certainty])[:config.max]
    parents = {g.casefold() for g, p in ranked if p >= config.min_certainty}
    picked = sorted((p, s) for s, g, p in styles if g.casefold() in parents and p >= config.min_style)
    style_names = config.names.apply([s for _, s in reversed(picked)])[:config.max]
    if config.level == "genre":
        return Choice(top, [], certainty, verdict, best)
    if config.level == "style":
        return Choice([], style_names, certainty, verdict, best)
    if config.level == "specific":
        return _most_specific(ranked, styles, certainty, verdict, best, config)
    return Choice(top, [s for s in style_names if s.casefold() not in {g.casefold() for g in top}], certainty, verdict,
                  best)


def _most_specific(ranked, styles, certainty, verdict, best, config: ChoiceConfig) -> Choice:
    """Per genre at or above the cut-off, in rank order: its surest style (at or above ``min_style``)
    that the user's names let through, else the genre itself; at most ``max`` names in all."""
    genres, chosen, seen = [], [], set()
    for genre, p in ranked:
        if p < config.min_certainty or len(genres) + len(chosen) >= config.max:
            break
        own = sorted(((q, s) for s, g, q in styles if g.casefold() == genre.casefold() and q >= config.min_style),
                     reverse=True)
        for name, is_style in [*((s, True) for _, s in own), (genre, False)]:
            kept = config.names.apply([name])
            if kept and kept[0].casefold() not in seen:
                seen.add(kept[0].casefold())
                (chosen if is_style else genres).append(kept[0])
                break
    return Choice(genres, chosen, certainty, verdict, best)


def choose_album(analyses: list[dict], *, config: ChoiceConfig = ChoiceConfig()) -> Choice:
    """One choice for an album: the mean of its tracks' genre (and style) probabilities.

    The album is ``unsure`` (nothing written) when fewer than :data:`ALBUM_AGREEMENT`
    of its analysed tracks have the album's top genre as their own top genre, or when
    the mean falls under ``min_certainty``; tracks that are not music do not vote.
    """
    voting = [a for a in analyses if a.get("verdict") in ("genre", "unsure") and a.get("genres")]
    if not voting:
        return Choice([], [], None, "not_music" if analyses else "unsure")
    names = sorted({canonical_name(g) for a in voting for g in a["genres"]})
    probs = np.array([[_by_canonical(a["genres"]).get(n, 0.0) for n in names] for a in voting])
    mean = probs.mean(axis=0)
    best = int(mean.argmax())
    agree = float((probs.argmax(axis=1) == best).mean())
    style_sum: dict[tuple[str, str], float] = {}
    for a in voting:
        for s, g, p in (a.get("details") or {}).get("styles", ()):
            key = (canonical_name(s), canonical_name(g))
            style_sum[key] = style_sum.get(key, 0.0) + float(p) / len(voting)
    verdict = "genre" if agree >= ALBUM_AGREEMENT else "unsure"
    return _pick(dict(zip(names, map(float, mean))), [(s, g, p) for (s, g), p in style_sum.items()], verdict, config)


def _by_canonical(genres: dict) -> dict[str, float]:
    return {canonical_name(g): float(p) for g, p in genres.items()}


@dataclass(frozen=True)
class TagDecision:
    """What to write into a file's genre tag and why. ``values``: the genre values to write, ``None``
    to leave the tag as it is. ``outcome``: ``"nothing"`` (no name was chosen), ``"unchanged"`` (the
    file already says so), ``"kept"`` (the user's own genre stays), ``"written"`` (the file had no
    genre), ``"replaced"`` or ``"merged"``. ``ours``: the file's genre is the one genrify last wrote."""

    values: list[str] | None
    outcome: str
    ours: bool = False

    def why(self, *, current: list[str], verdict: str | None = None) -> str:
        """Why nothing is written (``values`` is ``None``), in the words ``genrify tag`` and beets show:
        ``current`` is the file's genre, ``verdict`` the song's (said after "nothing to write")."""
        if self.outcome == "nothing":
            return f"nothing to write ({verdict})" if verdict else "nothing to write"
        if self.outcome == "kept":
            return f"kept existing genre {', '.join(current)}"
        return "already tagged by genrify" if self.ours else "already tagged"


def _keys(names: list[str]) -> list[str]:
    # One genre whatever its spelling: "hiphop", "Hip Hop" and "HIP-HOP" are all the taxonomy's Hip-Hop.
    return [" ".join(canonical_name(n).casefold().split()) for n in names]


def decide_tag(*, current: list[str], names: list[str], existing: str = "keep",
               written: list[str] | None = None) -> TagDecision:
    """The one rule for a genre tag a file already has: given its ``current`` genre values, the
    ``names`` genrify would write and the policy ``existing`` (one of :data:`EXISTING`), what to write.

    Two names mean the same genre when their canonical names (:func:`~genrify.taxonomy.canonical_name`)
    match in any case. A file that already says exactly ``names`` is left alone; one that says the same
    genres in another spelling too, except that ``overwrite`` respells it. Genres ``written`` by
    genrify itself (the last values it wrote into this file, where known) are not the user's: they
    are replaced whatever the policy. Otherwise a different genre is kept (``keep``), replaced
    (``overwrite``), or followed by the new names it lacks (``merge``).
    """
    if existing not in EXISTING:
        raise ConfigError(f"existing must be one of {', '.join(EXISTING)}, not {existing!r}")
    have = _keys(current)
    ours = bool(current) and bool(written) and have == _keys(written)
    if not names:
        return TagDecision(None, "nothing", ours)
    if current == names:
        return TagDecision(None, "unchanged", ours)
    if not current:
        return TagDecision(list(names), "written")
    if existing == "overwrite" or ours:
        return TagDecision(list(names), "replaced", ours)
    if have == _keys(names):
        return TagDecision(None, "unchanged")
    if existing == "keep":
        return TagDecision(None, "kept")
    merged, seen = list(current), set(have)
    for name, key in zip(names, _keys(names)):
        if key not in seen:
            seen.add(key)
            merged.append(name)
    return TagDecision(merged, "merged") if len(merged) > len(current) else TagDecision(None, "unchanged")
