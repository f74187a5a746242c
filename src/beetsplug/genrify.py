"""genrify for beets: genres from the sound of the songs, offline.

Enable it with ``plugins: genrify`` in beets' config (``pip install genrify[beets]``
puts this module in beets' ``beetsplug`` namespace, where beets looks for plugins).
``beet genrify [QUERY]`` tags the matching songs (``-s album``: one genre per album,
``-p``: only show what would change); with ``auto: yes`` (the default) every import
is tagged too. The same engine as ``genrify tag``: songs are analysed once and kept
in genrify's results index, so a second run is quick. Config keys (under ``genrify:``;
lastgenre's names in brackets are read too)::

    level: genre          # genre | style | both | specific (a style where one is sure, else the genre)
    max: 1                # [count] at most this many names of each level
    min_certainty: 0.5    # write a genre only at or above this probability
    whitelist: []         # a list, or a file with one genre per line: only these names are written
    aliases: {}           # a name (any case) -> the spelling to write
    ignore: []            # names never written
    source: track         # track | album | artist: one answer per song, or the mean of an album's or artist's songs
    write: yes            # also write the files' tags (when beets' import.write is on too)
    auto: yes             # tag on import
    overwrite: no         # [force] replace genres a song already has
    keep_existing: no     # keep a song's own genres and add genrify's after them
    separator: ", "       # joins several genres on a beets with only the one-text `genre` field
    model: null           # a .genrify model file or built-in name (null: the bundled model)
    fast: no
    workers: 1
    index: null           # the results index file (null: genrify's data folder)

A beets with the ``genres`` list field (beets 2.14 has only that one, shown by
``$genres``) gets the names as a list; on a beets with only the ``genre`` text
field, they are joined with ``separator``. A bad value stops ``beet genrify`` and
``beet import`` with one error line before any song is touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import confuse
from beets import ui
from beets.library import Item
from beets.plugins import BeetsPlugin

from genrify.errors import ConfigError, GenrifyError
from genrify.tagging import ChoiceConfig, ResultsIndex, TagJobConfig, analyse_files, choose, choose_album
from genrify.tagging.choose import decide_tag, names_from_mapping, read_name_list
from genrify.tagging.job import note_written
from genrify.tagging.stage import content_hash

#: What one answer covers: each song, the songs of an album, or the songs of an artist (lastgenre's ``source``).
SOURCES = ("track", "album", "artist")

#: lastgenre's names for the plugin's own keys, read when the plugin's key is not set.
LASTGENRE_KEYS = {"max": "count", "overwrite": "force"}


@dataclass(frozen=True)
class BeetsSettings:
    """The plugin's config, checked: the tagging ``job``, what one answer covers (``source``, one of
    :data:`SOURCES`) and the ``separator`` of several genres in beets' one-text ``genre`` field."""

    job: TagJobConfig = field(default_factory=TagJobConfig)
    source: str = "track"
    separator: str = ", "

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"source must be one of {', '.join(SOURCES)}, not {self.source!r}")


class GenrifyPlugin(BeetsPlugin):
    """The ``genrify`` beets plugin: a ``beet genrify`` command and an import stage."""

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name or "genrify")
        # genrify's defaults are its configuration dataclasses' (fast: None, the model's own choice, reads "no");
        # write, auto and index are the plugin's own. No default for source: the older `album` key speaks when
        # source is not set. Added as a source marked default, so that a key the user set can be told from
        # one left at its default (lastgenre's `count` then stands in for `max`).
        defaults = {"level": ChoiceConfig.level, "max": ChoiceConfig.max,
                    "min_certainty": ChoiceConfig.min_certainty, "whitelist": [], "aliases": {}, "ignore": [],
                    "write": True, "auto": True,
                    "overwrite": TagJobConfig.existing == "overwrite", "keep_existing": False,
                    "album": TagJobConfig.album, "separator": BeetsSettings.separator,
                    "model": TagJobConfig.model, "fast": bool(TagJobConfig.fast),
                    "workers": TagJobConfig.workers, "index": None}
        self.config.root().add(confuse.ConfigSource({self.config.key: defaults}, default=True))
        #: (beets item id, results-index song id) of the songs this import stage analysed: beets may rewrite
        #: their files after the stages (autotagging, scrub, ...), so the import's end notes them again.
        self._set_in_import: list[tuple[int, int]] = []
        if self.config["auto"].get(bool):
            self.import_stages = [self.imported]
            self.register_listener("import_begin", self.check_before_import)
            self.register_listener("import", self.after_import)

    # ------------------------------------------------------------------ configuration

    def _view(self, key: str) -> confuse.ConfigView:
        """The config value of ``key``, or of lastgenre's name for it when only that one is set."""
        alias = LASTGENRE_KEYS.get(key)
        if alias and self.config[alias].exists() and not _user_set(self.config[key]):
            return self.config[alias]
        return self.config[key]

    def settings(self) -> BeetsSettings:
        """The plugin's config, checked; a bad value is a one-line :class:`~genrify.errors.ConfigError`."""
        try:
            return self._settings()
        except confuse.ConfigError as exc:  # a value of the wrong type: confuse's message names the key
            raise ConfigError(str(exc)) from None

    def _settings(self) -> BeetsSettings:
        c = self.config
        names = names_from_mapping({"aliases": c["aliases"].get(dict), "ignore": c["ignore"].as_str_seq(),
                                    "whitelist": sorted(self._whitelist())}, source="genrify config")
        choice = ChoiceConfig(level=c["level"].as_str(), max=self._view("max").get(int),
                              min_certainty=float(c["min_certainty"].as_number()), names=names)
        model = c["model"].get()
        existing = ("merge" if c["keep_existing"].get(bool) else
                    "overwrite" if self._view("overwrite").get(bool) else "keep")
        job = TagJobConfig(choice=choice, model=None if model is None else str(model),
                           fast=True if c["fast"].get(bool) else None, workers=c["workers"].get(int),
                           existing=existing)
        source = c["source"].as_str() if c["source"].exists() else "album" if c["album"].get(bool) else "track"
        return BeetsSettings(job=job, source=source, separator=c["separator"].as_str())

    def _whitelist(self) -> frozenset[str]:
        """The whitelist: a list of names, or lastgenre's form, a file of one genre per line (a path
        relative to beets' config folder). ``no`` or an empty list: none; ``yes`` (lastgenre's "its own
        list") is none too, since genrify writes only its taxonomy's names anyway."""
        view = self.config["whitelist"]
        value = view.get()
        if value is None or isinstance(value, bool) or value == []:
            return frozenset()
        if isinstance(value, str):
            return read_name_list(view.as_filename())
        return frozenset(view.as_str_seq())

    def job_config(self) -> TagJobConfig:
        """The plugin's config as a :class:`~genrify.tagging.TagJobConfig` (a bad value is a GenrifyError)."""
        return self.settings().job

    def check_before_import(self, session=None) -> None:
        """``import_begin``: a bad config stops the import before any song is imported."""
        try:
            self.settings()
        except GenrifyError as exc:
            raise ui.UserError(f"genrify: {exc}") from None

    # ------------------------------------------------------------------ the work

    def tag_items(self, items, *, settings: BeetsSettings, write: bool, pretend: bool = False,
                  importing: bool = False) -> list[str]:
        """Set the ``genres`` of ``items`` (beets :class:`~beets.library.Item`), store them and, with
        ``write``, write the files; with ``pretend``, only log what would change; ``importing``: for the
        import stage, whose songs :meth:`after_import` notes again. Returns one line per song that could
        not be tagged. Raises :class:`~genrify.errors.GenrifyError` when the results index cannot be used."""
        config = settings.job
        with ResultsIndex(self.config["index"].get()) as index:
            summary = analyse_files([i.filepath for i in items], index=index, config=config)
            by_path = {f.path: f for f in summary.files}
            outcomes = [(item, by_path.get(str(item.filepath))) for item in items]
            groups: dict = {}
            for item, f in outcomes:
                if f is not None and f.song is not None:
                    groups.setdefault(_group(item, settings.source), []).append((item, f))
            for members in groups.values():
                if len(members) > 1:  # an album's or an artist's songs: one answer, from their mean
                    choices = [choose_album([f.song["analysis"] for _, f in members], config=config.choice)]
                    choices *= len(members)
                else:
                    choices = [choose(f.song["analysis"], config=config.choice) for _, f in members]
                for (item, f), choice in zip(members, choices):
                    self._set(item, f, choice, index=index, settings=settings, write=write, pretend=pretend)
                    if importing and item.id is not None and not pretend:
                        self._set_in_import.append((item.id, f.song["id"]))
        return [f.error for _, f in outcomes if f is not None and f.error]

    def _set(self, item: Item, f, choice, *, index: ResultsIndex, settings: BeetsSettings, write: bool,
             pretend: bool) -> None:
        multi = "genres" in item._fields
        current = list(item.get("genres") or []) if multi else _split(item.get("genre"), settings.separator)
        # The rule of `genrify tag` and `genrify predict --write-tags`, on beets' view of the song's genres.
        decision = decide_tag(current=current, names=choice.names, existing=settings.job.existing,
                              written=f.song.get("written"))
        if decision.values is None:
            self._log.info("{}: {}", item.filepath, decision.why(current=current, verdict=choice.verdict))
            return
        if pretend:
            self._log.info("{}: would write {}", item.filepath, ", ".join(decision.values))
            return
        if multi:
            item.genres = decision.values
        else:
            item.genre = settings.separator.join(decision.values)
        self._log.info("{}: {}", item.filepath, ", ".join(decision.values))
        retagged = bool(write and item.try_write())
        item.store()
        # So that a rerun knows these genres for genrify's own, and the rewritten file for the same song. (An
        # import that autotags writes its files again after the import stages: after_import notes those.)
        try:
            note_written(index, song=f.song["id"], path=f.path, written=decision.values, previous=current,
                         retagged=retagged)
        except GenrifyError as exc:
            self._log.warning("genrify: {}", exc)

    # ------------------------------------------------------------------ beets hooks

    def commands(self) -> list[ui.Subcommand]:
        cmd = ui.Subcommand("genrify", help="tag genres from the sound of the songs (genrify)")
        cmd.parser.add_option("-s", "--source", choices=SOURCES, default=None,
                              help="one answer per track, or per album or artist from their songs' mean")
        cmd.parser.add_option("-a", "--album", action="store_true", default=None,
                              help="one genre per album, from its tracks' mean (-s album)")
        cmd.parser.add_option("-f", "--force", action="store_true", default=None,
                              help="replace genres the songs already have")
        cmd.parser.add_option("-k", "--keep-existing", action="store_true", default=None,
                              help="keep the songs' own genres and add genrify's after them")
        cmd.parser.add_option("-p", "--pretend", action="store_true", default=False,
                              help="show what would be written, change nothing")

        def run(lib, opts, args) -> None:
            if opts.force:
                self.config["overwrite"] = True
            if opts.keep_existing:
                self.config["keep_existing"] = True
            if opts.source or opts.album:
                self.config["source"] = opts.source or "album"
            try:  # a bad config stops here, before any song is analysed
                settings = self.settings()
            except GenrifyError as exc:
                raise ui.UserError(f"genrify: {exc}") from None
            items = list(lib.items(args))
            write = self.config["write"].get(bool) and ui.should_write() and not opts.pretend
            try:
                failed = self.tag_items(items, settings=settings, write=write, pretend=opts.pretend)
            except GenrifyError as exc:
                raise ui.UserError(f"genrify: {exc}") from None
            for line in failed:
                ui.print_(f"genrify: failed: {line}")
            ui.print_(f"genrify: {len(items) - len(failed)} of {len(items)} songs analysed"
                      + ("; pretend: nothing changed" if opts.pretend else ""))
            if items and len(failed) == len(items):
                raise ui.UserError("genrify: no song could be analysed")

        cmd.func = run
        return [cmd]

    def imported(self, session, task) -> None:
        """Import stage: tag the songs just imported; their files too when both this plugin's ``write``
        and beets' ``import.write`` say so (beets writes an as-is import's files only when it retagged them)."""
        items = list(task.imported_items())
        write = self.config["write"].get(bool) and ui.should_write()
        try:
            settings = self.settings()
            if not task.is_album:  # a singleton import: no album to average over
                settings = BeetsSettings(job=settings.job, separator=settings.separator)
            failed = self.tag_items(items, settings=settings, write=write, importing=True)
        except GenrifyError as exc:
            failed = [str(exc)]
        for line in failed:
            self._log.warning("genrify: {}", line)

    def after_import(self, lib, paths=None) -> None:
        """``import`` (the end of ``beet import``): record the files the import stage analysed as beets left
        them (moved, retagged), so a rerun finds the songs by their files and knows the genres genrify wrote
        for its own (else an autotagged file, rewritten after the stages, is analysed anew and its genres
        taken for the user's)."""
        noted, self._set_in_import = self._set_in_import, []
        if not noted:
            return
        try:
            with ResultsIndex(self.config["index"].get()) as index:
                for item_id, song in noted:
                    item = lib.get_item(item_id)
                    if item is None:  # removed again during the import
                        continue
                    try:
                        digest, st = content_hash(item.filepath)
                    except GenrifyError as exc:
                        self._log.warning("genrify: {}", exc)
                        continue
                    index.see(song, path=str(item.filepath), size=st.st_size, mtime_ns=st.st_mtime_ns, digest=digest)
        except GenrifyError as exc:
            self._log.warning("genrify: {}", exc)


def _user_set(view: confuse.ConfigView) -> bool:
    """Whether a config source other than the plugin's defaults sets ``view``."""
    return any(not source.default for _, source in view.resolve())


def _split(text: str | None, separator: str) -> list[str]:
    """The genres of beets' one-text ``genre`` field, joined by ``separator``."""
    if not text:
        return []
    return [g.strip() for g in text.split(separator) if g.strip()] if separator.strip() else [text]


def _group(item: Item, source: str):
    """The songs one answer covers: ``item`` alone, its album, or its artist."""
    if source == "album" and item.album_id:
        return "album", item.album_id
    if source == "artist" and (item.artist or item.albumartist):
        return "artist", (item.artist or item.albumartist).casefold()
    return "item", id(item)
