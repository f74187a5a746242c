"""genrify for beets: genres from the sound of the songs, offline.

Enable it with ``plugins: genrify`` in beets' config (``pip install genrify[beets]``
puts this module in beets' ``beetsplug`` namespace, where beets looks for plugins).
``beet genrify [QUERY]`` tags the matching songs (``-a``: one genre per album);
with ``auto: yes`` (the default) every import is tagged too. The same engine as
``genrify tag``: songs are analysed once and kept in genrify's results index, so
a second run is quick. Config keys (under ``genrify:``)::

    level: genre          # genre | style | both
    max: 1                # at most this many names of each level
    min_certainty: 0.5    # write a genre only at or above this probability
    whitelist: []         # when not empty, only these names are written
    aliases: {}           # a name (any case) -> the spelling to write
    ignore: []            # names never written
    write: yes            # also write the files' tags (when beets' import.write is on too)
    auto: yes             # tag on import
    overwrite: no         # replace genres a song already has
    album: no             # on import and by default, one genre per album
    model: null           # a .genrify model file or built-in name (null: the bundled model)
    fast: no
    workers: 1
    index: null           # the results index file (null: genrify's data folder)

beets keeps several genres in the ``genres`` list field (beets 2.x); on an older
beets with only the ``genre`` text field, the names are joined with ``", "``.
"""

from __future__ import annotations

from beets import ui
from beets.library import Item
from beets.plugins import BeetsPlugin

from genrify.errors import GenrifyError
from genrify.tagging import ChoiceConfig, ResultsIndex, TagJobConfig, analyse_files, choose, choose_album
from genrify.tagging.choose import decide_tag, names_from_mapping


class GenrifyPlugin(BeetsPlugin):
    """The ``genrify`` beets plugin: a ``beet genrify`` command and an import stage."""

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name or "genrify")
        # genrify's defaults are its configuration dataclasses' (fast: None, the model's own choice, reads "no");
        # write, auto and index are the plugin's own.
        self.config.add({"level": ChoiceConfig.level, "max": ChoiceConfig.max,
                         "min_certainty": ChoiceConfig.min_certainty, "whitelist": [], "aliases": {}, "ignore": [],
                         "write": True, "auto": True,
                         "overwrite": TagJobConfig.existing == "overwrite", "album": TagJobConfig.album,
                         "model": TagJobConfig.model, "fast": bool(TagJobConfig.fast),
                         "workers": TagJobConfig.workers, "index": None})
        if self.config["auto"].get(bool):
            self.import_stages = [self.imported]

    # ------------------------------------------------------------------ configuration

    def job_config(self) -> TagJobConfig:
        """The plugin's config as a :class:`~genrify.tagging.TagJobConfig` (a bad value is a GenrifyError)."""
        c = self.config
        names = names_from_mapping({"aliases": c["aliases"].get(dict), "ignore": c["ignore"].as_str_seq(),
                                    "whitelist": c["whitelist"].as_str_seq()}, source="genrify config")
        choice = ChoiceConfig(level=c["level"].as_str(), max=c["max"].get(int),
                              min_certainty=float(c["min_certainty"].get()), names=names)
        model = c["model"].get()
        return TagJobConfig(choice=choice, model=None if model is None else str(model),
                            fast=True if c["fast"].get(bool) else None, workers=c["workers"].get(int),
                            existing="overwrite" if c["overwrite"].get(bool) else "keep")

    # ------------------------------------------------------------------ the work

    def tag_items(self, items, *, album: bool, write: bool) -> list[str]:
        """Set the ``genres`` of ``items`` (beets :class:`~beets.library.Item`), store them and, with
        ``write``, write the files. Returns one line per song that could not be tagged."""
        try:
            config = self.job_config()
            with ResultsIndex(self.config["index"].get()) as index:
                summary = analyse_files([i.filepath for i in items], index=index, config=config)
        except GenrifyError as exc:
            return [f"genrify: {exc}"]
        by_path = {f.path: f for f in summary.files}
        outcomes = [(item, by_path.get(str(item.filepath))) for item in items]
        failed = [f"{f.error}" for _, f in outcomes if f is not None and f.error]
        analysed = [(item, f) for item, f in outcomes if f is not None and f.song is not None]
        groups: dict = {}
        for item, f in analysed:
            groups.setdefault(item.album_id if album and item.album_id else id(item), []).append((item, f))
        for members in groups.values():
            if album and len(members) > 1:
                choices = [choose_album([f.song["analysis"] for _, f in members], config=config.choice)] * len(members)
            else:
                choices = [choose(f.song["analysis"], config=config.choice) for _, f in members]
            for (item, f), choice in zip(members, choices):
                self._set(item, choice.names, config=config, write=write, written=f.song.get("written"))
        return failed

    def _set(self, item: Item, names: list[str], *, config: TagJobConfig, write: bool,
             written: list[str] | None) -> None:
        multi = "genres" in item._fields
        current = list(item.get("genres") or []) if multi else [g for g in [item.get("genre")] if g]
        # The rule of `genrify tag` and `genrify predict --write-tags`, on beets' view of the song's genres.
        decision = decide_tag(current=current, names=names, existing=config.existing, written=written)
        if decision.values is None:
            why = {"nothing": "nothing to write", "unchanged": "already tagged",
                   "kept": f"kept existing genre {', '.join(current)}"}[decision.outcome]
            self._log.info("{}: {}", item.filepath, why)
            return
        if multi:
            item.genres = decision.values
        else:
            item.genre = ", ".join(decision.values)
        self._log.info("{}: {}", item.filepath, ", ".join(decision.values))
        if write:
            item.try_write()
        item.store()

    # ------------------------------------------------------------------ beets hooks

    def commands(self) -> list[ui.Subcommand]:
        cmd = ui.Subcommand("genrify", help="tag genres from the sound of the songs (genrify)")
        cmd.parser.add_option("-a", "--album", action="store_true", default=None,
                              help="one genre per album, from its tracks' mean")
        cmd.parser.add_option("-f", "--force", action="store_true", default=None,
                              help="replace genres the songs already have")

        def run(lib, opts, args) -> None:
            if opts.force:
                self.config["overwrite"] = True
            album = opts.album if opts.album is not None else self.config["album"].get(bool)
            items = list(lib.items(args))
            failed = self.tag_items(items, album=album, write=self.config["write"].get(bool) and ui.should_write())
            for line in failed:
                ui.print_(line if line.startswith("genrify:") else f"genrify: failed: {line}")
            ui.print_(f"genrify: {len(items) - len(failed)} of {len(items)} songs analysed")
            if items and len(failed) == len(items):
                raise ui.UserError("genrify: no song could be analysed")

        cmd.func = run
        return [cmd]

    def imported(self, session, task) -> None:
        """Import stage: tag the songs just imported; their files too when both this plugin's ``write``
        and beets' ``import.write`` say so (beets writes an as-is import's files only when it retagged them)."""
        items = list(task.imported_items())
        write = self.config["write"].get(bool) and ui.should_write()
        for line in self.tag_items(items, album=task.is_album and self.config["album"].get(bool), write=write):
            self._log.warning("{}", line)
