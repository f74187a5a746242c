"""genrify's genre taxonomy, as data: top-level genres, the styles beneath them, and what speaks for each.

The tree lives in ``assets/taxonomy.json`` (shipped with the package and copied
into every model file that speaks it, so a model file alone rebuilds its
output). Each node has an ``id`` (stable, lower-case), a canonical display
``name`` (what genrify writes into tags), ``aliases`` (spellings found in
users' tags that mean the node) and ``evidence``: ``gtzan`` names the GTZAN
label of labelled audio for it, ``allmusic`` the AllMusic genres whose songs
may be it (one label can stand for several genres: "Pop/Rock" is Pop or Rock),
and each tagger backbone (``msd_musicnn``, ``mtt_musicnn``, ``mn04``, …)
lists the tags that speak for it. A top-level genre needs labelled audio; a
style needs a tagger's tags.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np

from genrify.errors import ConfigError


@dataclass(frozen=True)
class Node:
    """A genre or a style."""

    id: str
    name: str
    aliases: tuple[str, ...]
    tags: tuple[tuple[str, tuple[str, ...]], ...]  # (backbone, tags) pairs
    gtzan: str | None = None
    styles: tuple["Node", ...] = ()
    allmusic: tuple[str, ...] = ()

    def tags_of(self, backbone: str) -> tuple[str, ...]:
        """The tags of ``backbone`` that speak for this node (empty when none)."""
        return dict(self.tags).get(backbone, ())


@dataclass(frozen=True)
class Taxonomy:
    """The tree: :attr:`genres` in a fixed order, each with its styles."""

    genres: tuple[Node, ...]
    source: str  # the JSON text it was read from (saved in model files)

    @property
    def ids(self) -> list[str]:
        """Top-level genre ids, in output order."""
        return [g.id for g in self.genres]

    def genre(self, genre_id: str) -> Node:
        """The top-level genre ``genre_id``."""
        for g in self.genres:
            if g.id == genre_id:
                return g
        raise ConfigError(f"no genre {genre_id!r} in the taxonomy")

    def canonical(self, text: str) -> Node | None:
        """The genre or style that ``text`` (a tag value, any case) names, by id, name or alias; else ``None``."""
        key = " ".join(text.casefold().replace("_", " ").split())
        for g in self.genres:
            for node in (*g.styles, g):  # a style's alias is more specific than its genre's
                spellings = {node.id, node.id.replace("-", " "), node.name.casefold(),
                             *(a.casefold() for a in node.aliases)}
                if key in spellings:
                    return node
        return None

    def parent(self, node: Node) -> Node:
        """The top-level genre of ``node`` (itself when it is one)."""
        for g in self.genres:
            if node is g or node in g.styles:
                return g
        raise ConfigError(f"{node.id!r} is not in the taxonomy")

    def evidence_matrix(self, backbone: str, tags: list[str], nodes: list[Node] | None = None) -> np.ndarray:
        """``(len(nodes), len(tags))`` 0/1: which of ``backbone``'s ``tags`` speak for each node
        (default: the top-level genres)."""
        nodes = list(self.genres) if nodes is None else nodes
        index = {t: i for i, t in enumerate(tags)}
        m = np.zeros((len(nodes), len(tags)), np.float32)
        for r, node in enumerate(nodes):
            for t in node.tags_of(backbone):
                if t not in index:
                    raise ConfigError(f"taxonomy: {node.id!r} names tag {t!r}, which {backbone} does not have")
                m[r, index[t]] = 1.0
        return m

    def label_set(self, *, gtzan: str | None = None, allmusic: list[str] = ()) -> np.ndarray:
        """``(n_genres,)`` bool: the genres a song labelled ``gtzan`` or with the AllMusic genres
        ``allmusic`` may be (empty when no label maps to a genre)."""
        wanted = {a.strip().casefold() for a in allmusic}
        return np.array([(gtzan is not None and g.gtzan == gtzan) or bool(wanted & {a.casefold() for a in g.allmusic})
                         for g in self.genres])

    def styles(self) -> list[tuple[Node, Node]]:
        """Every ``(genre, style)`` pair, in order."""
        return [(g, s) for g in self.genres for s in g.styles]


def _node(d: dict, *, styles: tuple[Node, ...] = ()) -> Node:
    evidence = d.get("evidence", {})
    tags = tuple((k, tuple(v)) for k, v in sorted(evidence.items()) if k not in _LABELS and v)
    return Node(id=d["id"], name=d["name"], aliases=tuple(d.get("aliases", ())), tags=tags,
                gtzan=evidence.get("gtzan"), styles=styles, allmusic=tuple(evidence.get("allmusic", ())))


#: Evidence keys that name labelled audio rather than a tagger's tags.
_LABELS = ("gtzan", "allmusic")


def parse_taxonomy(text: str) -> Taxonomy:
    """A :class:`Taxonomy` from its JSON text; raises :class:`ConfigError` on a malformed tree."""
    try:
        data = json.loads(text)
        genres = tuple(_node(g, styles=tuple(_node(s) for s in g.get("styles", ()))) for g in data["genres"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"taxonomy: malformed ({exc})") from None
    ids = [n.id for g in genres for n in (g, *g.styles)]
    if len(ids) != len(set(ids)):
        raise ConfigError("taxonomy: node ids must be unique")
    for g in genres:
        if not g.gtzan and not g.allmusic:
            raise ConfigError(f"taxonomy: genre {g.id!r} has no labelled audio (gtzan or allmusic)")
        for style in g.styles:
            if not style.tags:
                raise ConfigError(f"taxonomy: style {style.id!r} has no tagger tags")
    return Taxonomy(genres=genres, source=text)


@functools.lru_cache(maxsize=1)
def default_taxonomy() -> Taxonomy:
    """The taxonomy shipped with genrify (``assets/taxonomy.json``)."""
    return parse_taxonomy((resources.files("genrify") / "assets" / "taxonomy.json").read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=4096)  # a library repeats the same few dozen labels on every song
def canonical_name(label: str) -> str:
    """``label``'s canonical spelling: the display name of the genre or style of the shipped
    taxonomy that it names by id, name or alias, in any case (``"hiphop"`` → ``"Hip-Hop"``,
    ``"rnb"`` → ``"R&B"``); ``label`` itself when the taxonomy does not know it (a user's own genre,
    a model file's own label). The one spelling every front door writes into tags and shows."""
    node = default_taxonomy().canonical(label)
    return label if node is None else node.name
