"""The beets plugin (``src/beetsplug/genrify.py``) against a real beets library in a temporary folder.

beets itself runs as a subprocess (``python -m beets`` with its own config and
library database), imports real tagged files, runs ``beet genrify``; the results
are read back with beets' own :class:`beets.library.Library` and from the files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

pytest.importorskip("beets", reason="the beets extra is not installed (pip install genrify[beets])")

from conftest import genrify_env  # noqa: E402

from genrify.sources.tags import read_genres  # noqa: E402


@pytest.fixture(scope="module")
def songs_src(tmp_path_factory):
    from genrify.sources.synthetic import write_demo_corpus

    root = tmp_path_factory.mktemp("beets-src")
    write_demo_corpus(root, per_genre=1, duration=4.0, fmt="flac", styles=("classical", "metal", "jazz"))
    (root / "manifest.csv").unlink()
    return root


@pytest.fixture
def beets_home(tmp_path, songs_src, tiny_cnn_model):
    """A beets config folder with the plugin enabled, and a copy of the songs to import."""
    home = tmp_path / "beets"
    home.mkdir()
    music = tmp_path / "incoming"
    shutil.copytree(songs_src, music)
    (home / "config.yaml").write_text(
        f"directory: {tmp_path / 'library'}\nlibrary: {home / 'library.db'}\nplugins: [genrify]\n"
        "import:\n  copy: no\n  write: yes\n  autotag: no\n"
        f"genrify:\n  model: {tiny_cnn_model}\n  min_certainty: 0.0\n  index: {tmp_path / 'index.sqlite'}\n")
    return home, music


def _beet(home, *args, timeout=300):
    env = genrify_env() | {"BEETSDIR": str(home)}
    return subprocess.run([sys.executable, "-m", "beets", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _library(home):
    from beets.library import Library

    return Library(str(home / "library.db"))


def test_import_tags_every_song_through_the_plugins_import_stage(beets_home, tmp_path):
    from genrify.tagging import ResultsIndex, choose
    from genrify.tagging.choose import ChoiceConfig

    home, music = beets_home
    before = {p: read_genres(p) for p in music.rglob("*.flac")}
    assert all(g and g[0].islower() for g in before.values())  # the corpus writer's own spelling
    (home / "config.yaml").write_text((home / "config.yaml").read_text() + "  overwrite: yes\n")
    proc = _beet(home, "import", "-q", "-A", music)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    with ResultsIndex(tmp_path / "index.sqlite") as index:
        analysed = {r["path"]: choose(r["analysis"], config=ChoiceConfig(min_certainty=0.0)) for r in index.rows()}
    items = list(_library(home).items())
    assert len(items) == 3 and len(analysed) == 3  # the import stage analysed every song
    for item in items:
        assert list(item.genres) == analysed[str(item.filepath)].names  # genrify's choice, in beets' genres
        assert read_genres(item.filepath) == list(item.genres)  # and beets wrote it into the file


def test_beet_genrify_writes_beets_genres_and_the_files(beets_home):
    home, music = beets_home
    (home / "config.yaml").write_text((home / "config.yaml").read_text() + "  auto: no\n  overwrite: yes\n"
                                      "  aliases: {classical: Art Music}\n")
    assert _beet(home, "import", "-q", "-A", music).returncode == 0
    proc = _beet(home, "genrify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 of 3 songs analysed" in proc.stdout
    items = list(_library(home).items())
    for item in items:
        assert item.genres and "Classical" not in item.genres  # aliased by the config
        assert read_genres(item.filepath) == list(item.genres)  # written into the file as well
    again = _beet(home, "genrify", "-a")  # per album, from the index: nothing analysed again
    assert again.returncode == 0, again.stderr


def test_beet_genrify_reports_songs_it_cannot_read_one_line_each(beets_home):
    home, music = beets_home
    (home / "config.yaml").write_text((home / "config.yaml").read_text() + "  auto: no\n")
    assert _beet(home, "import", "-q", "-A", music).returncode == 0
    files = sorted(music.rglob("*.flac"))
    files[0].write_bytes(b"this song was damaged after the import\n" * 40)
    files[1].unlink()
    proc = _beet(home, "genrify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    failed = [line for line in proc.stdout.splitlines() if line.startswith("genrify: failed:")]
    assert len(failed) == 2 and str(files[0]) in "".join(failed) and str(files[1]) in "".join(failed)
    assert "1 of 3 songs analysed" in proc.stdout and "Traceback" not in proc.stderr
    files[2].unlink()
    proc = _beet(home, "genrify")
    assert proc.returncode != 0 and "no song could be analysed" in proc.stdout + proc.stderr


def test_the_plugins_defaults_are_genrifys_dataclasses(tmp_path, monkeypatch):
    from beetsplug.genrify import GenrifyPlugin

    from genrify.tagging import ChoiceConfig, TagJobConfig

    monkeypatch.setenv("BEETSDIR", str(tmp_path))  # no user's beets config in the way
    plugin = GenrifyPlugin()
    assert plugin.job_config() == TagJobConfig()  # every choice and job default, names included
    config = plugin.config
    assert (config["level"].get(), config["max"].get(), config["min_certainty"].get()) == (
        ChoiceConfig.level, ChoiceConfig.max, ChoiceConfig.min_certainty)
    assert config["album"].get() is TagJobConfig.album and config["workers"].get() == TagJobConfig.workers
    assert config["model"].get() is TagJobConfig.model
    assert config["overwrite"].get() is (TagJobConfig.existing == "overwrite")


@pytest.mark.slow
def test_predict_tag_and_beets_write_the_same_spelling_of_the_same_answer(gtzan_mini, tmp_path, run_genrify):
    """A real GTZAN hip-hop clip through the three front doors with --model gtzan (whose label is "hiphop"):
    each writes the taxonomy's "Hip-Hop" into an untagged copy, and each leaves a copy already tagged
    "hip hop" (the same genre, the user's spelling) as it is."""
    import soundfile as sf
    from mutagen.flac import FLAC

    y, sr = sf.read(gtzan_mini / "hiphop" / "hiphop.00001.wav")  # the model: hiphop, 100%
    doors = {}
    for door in ("predict", "tag", "beets"):
        doors[door] = folder = tmp_path / door
        folder.mkdir()
        for name, genre in (("untagged", None), ("tagged", "hip hop")):
            sf.write(folder / f"{name}.flac", y, sr)
            tags = FLAC(folder / f"{name}.flac")
            tags.update({"artist": "GTZAN", "album": "hiphop", "title": name, **({"genre": genre} if genre else {})})
            tags.save()
    proc = run_genrify("predict", doors["predict"], "--model", "gtzan", "--write-tags")
    assert proc.returncode == 0 and "[genre tag: Hip-Hop]" in proc.stdout, proc.stdout + proc.stderr
    proc = run_genrify("tag", doors["tag"], "--write", "--model", "gtzan", "--index", tmp_path / "tag.sqlite")
    assert proc.returncode == 0 and "1 written" in proc.stdout, proc.stdout + proc.stderr
    home = tmp_path / "beetsdir"
    home.mkdir()
    (home / "config.yaml").write_text(
        f"directory: {tmp_path / 'library'}\nlibrary: {home / 'library.db'}\nplugins: [genrify]\n"
        "import:\n  copy: no\n  write: yes\n  autotag: no\n"
        f"genrify:\n  model: gtzan\n  index: {tmp_path / 'beets.sqlite'}\n")
    proc = _beet(home, "import", "-q", "-A", doors["beets"])
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    written = {door: {name: FLAC(folder / f"{name}.flac").get("genre") for name in ("untagged", "tagged")}
               for door, folder in doors.items()}
    assert written == {door: {"untagged": ["Hip-Hop"], "tagged": ["hip hop"]} for door in doors}


# ---------------------------------------------------------------------------- lastgenre's conventions, config errors


def _config(home, extra: str) -> None:
    """Add ``extra`` (lines of the ``genrify:`` section) to the beets config of ``home``."""
    (home / "config.yaml").write_text((home / "config.yaml").read_text() + extra)


def _index_choices(index_path, **choice):
    """Every song of the results index: path → its analysis and genrify's choice for it."""
    from genrify.tagging import ResultsIndex, choose
    from genrify.tagging.choose import ChoiceConfig

    config = ChoiceConfig(**({"min_certainty": 0.0} | choice))
    with ResultsIndex(index_path) as index:
        return {r["path"]: (r["analysis"], choose(r["analysis"], config=config)) for r in index.rows()}


def test_a_whitelist_file_in_lastgenres_form_is_read_one_genre_per_line(beets_home, tmp_path):
    from genrify.tagging.choose import NameRules

    home, music = beets_home
    genres = tmp_path / "genres.txt"  # lastgenre's form and spelling: one per line, lower case, blank lines
    names = ["hip hop", "dance", "metal", "jazz", "blues"]  # no classical
    genres.write_text("# my genres\n" + "\n\n".join(names) + "\n")
    _config(home, f"  auto: no\n  overwrite: yes\n  whitelist: {genres}\n")
    assert _beet(home, "import", "-q", "-A", music).returncode == 0
    proc = _beet(home, "genrify")
    assert proc.returncode == 0 and "3 of 3 songs analysed" in proc.stdout, proc.stdout + proc.stderr
    rules = NameRules(whitelist=frozenset(names))
    expected = {path: choice.names for path, (_, choice) in _index_choices(tmp_path / "index.sqlite",
                                                                           names=rules).items()}
    items = list(_library(home).items())
    assert all(expected.values()) and {str(i.filepath): list(i.genres) for i in items} == expected
    assert not any("Classical" in i.genres for i in items)
    genres.unlink()  # a whitelist file that is gone: one line naming it, before any song is analysed
    (tmp_path / "index.sqlite").unlink()
    proc = _beet(home, "genrify")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and str(genres) in lines[0] and "cannot read the genre list" in lines[0]
    assert not (tmp_path / "index.sqlite").exists()


@pytest.mark.parametrize(("bad", "named"), [("level: subgenre", "level"), ("max: lots", "max"),
                                            ("source: playlist", "source"), ("count: 0", "max")])
def test_a_bad_config_value_stops_beet_import_and_beet_genrify_before_any_work(beets_home, tmp_path, bad, named):
    home, music = beets_home
    good = (home / "config.yaml").read_text()

    def one_error_line(*command):
        proc = _beet(home, *command)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "Traceback" not in out and "songs analysed" not in out, (command, out)
        # beets 2.x notes the backups it makes when it creates a library: its lines, not an error's
        lines = [line for line in out.splitlines() if line.strip() and not line.startswith("Created database backup")]
        assert len(lines) == 1 and "genrify" in lines[0] and named in lines[0], (command, out)
        assert not (tmp_path / "index.sqlite").exists()  # no song was analysed

    _config(home, f"  {bad}\n")
    one_error_line("import", "-q", "-A", music)
    assert list(_library(home).items()) == []  # the import stopped before importing a song
    (home / "config.yaml").write_text(good + "  auto: no\n")
    assert _beet(home, "import", "-q", "-A", music).returncode == 0
    _config(home, f"  {bad}\n")
    one_error_line("genrify")


def test_lastgenres_count_force_keep_existing_and_pretend(beets_home, tmp_path):
    home, music = beets_home
    _config(home, "  auto: no\n  count: 2\n  force: yes\n")
    assert _beet(home, "import", "-q", "-A", music).returncode == 0
    before = {p: p.read_bytes() for p in music.rglob("*.flac")}
    genres_before = {str(i.filepath): list(i.genres) for i in _library(home).items()}
    proc = _beet(home, "genrify", "-p")  # lastgenre's --pretend: say what would change, change nothing
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (proc.stdout + proc.stderr).count("would write") == 3 and "nothing changed" in proc.stdout
    assert {str(i.filepath): list(i.genres) for i in _library(home).items()} == genres_before
    assert {p: p.read_bytes() for p in music.rglob("*.flac")} == before
    proc = _beet(home, "genrify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    choices = _index_choices(tmp_path / "index.sqlite", max=2)
    for item in _library(home).items():  # count is max; force replaced the files' own genres
        assert len(item.genres) == 2 and list(item.genres) == choices[str(item.filepath)][1].names
    lib = _library(home)
    mine = next(iter(lib.items()))
    mine.genres = ["Folk"]  # the user's own genre, set after genrify's
    mine.store()
    proc = _beet(home, "genrify", "-k")  # lastgenre's --keep-existing: the user's genre first, genrify's after
    assert proc.returncode == 0, proc.stdout + proc.stderr
    item = _library(home).get_item(mine.id)
    assert list(item.genres) == ["Folk", *choices[str(item.filepath)][1].names]


@pytest.fixture(scope="module")
def album_src(tmp_path_factory):
    """One folder, one album: two jazz songs and a metal one."""
    from genrify.sources.synthetic import write_demo_corpus

    root = tmp_path_factory.mktemp("beets-album-src")
    write_demo_corpus(root / "corpus", per_genre=2, duration=4.0, fmt="flac", styles=("jazz", "metal"))
    album = root / "album"
    album.mkdir()
    songs = sorted((root / "corpus" / "jazz").glob("*.flac")) + sorted((root / "corpus" / "metal").glob("*.flac"))[:1]
    for song in songs:
        shutil.copy(song, album / song.name)
    return album


def test_source_album_gives_an_albums_tracks_the_mean_of_their_analyses(beets_home, album_src, tmp_path):
    from genrify.tagging import choose_album
    from genrify.tagging.choose import ChoiceConfig

    home, _ = beets_home
    music = tmp_path / "one-album"
    shutil.copytree(album_src, music)
    _config(home, "  auto: no\n  overwrite: yes\n  source: album\n")
    assert _beet(home, "import", "-q", "-A", music).returncode == 0
    items = list(_library(home).items())
    assert len(items) == 3 and len({i.album_id for i in items}) == 1
    proc = _beet(home, "genrify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    choices = _index_choices(tmp_path / "index.sqlite")
    assert len({tuple(c.names) for _, c in choices.values()}) > 1  # per track, the songs differ
    album = choose_album([a for a, _ in choices.values()], config=ChoiceConfig(min_certainty=0.0))
    assert album.names  # two of three agree: the album is sure
    assert [list(i.genres) for i in _library(home).items()] == [album.names] * 3
    proc = _beet(home, "genrify", "-s", "artist")  # lastgenre's -s: here, the mean of each artist's songs
    assert proc.returncode == 0, proc.stdout + proc.stderr
    by_artist: dict = {}
    for item in _library(home).items():
        by_artist.setdefault(item.artist, []).append(item)
    assert sorted(len(v) for v in by_artist.values()) == [1, 2]  # the two jazz songs share their artist
    for songs in by_artist.values():
        analyses = [choices[str(i.filepath)][0] for i in songs]
        mean = choose_album(analyses, config=ChoiceConfig(min_certainty=0.0)) if len(songs) > 1 else choices[
            str(songs[0].filepath)][1]
        assert all(list(i.genres) == mean.names for i in songs)


def test_a_rerun_knows_the_genres_genrify_wrote_and_analyses_nothing_again(beets_home, tmp_path):
    from genrify.tagging import committed_songs

    home, music = beets_home
    _config(home, "  overwrite: yes\n")
    proc = _beet(home, "import", "-q", "-A", music)  # the import stage writes genrify's genres into the files
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert committed_songs(tmp_path / "index.sqlite") == 3
    text = (home / "config.yaml").read_text().replace("  overwrite: yes\n", "")
    (home / "config.yaml").write_text(text)
    proc = _beet(home, "genrify")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and out.count("already tagged by genrify") == 3, out
    assert "kept existing genre" not in out
    assert committed_songs(tmp_path / "index.sqlite") == 3  # the retagged files were known by their new hash
    (home / "config.yaml").write_text(text + "  max: 2\n")
    proc = _beet(home, "genrify")  # a new choice replaces genrify's own earlier answer, as `genrify tag` does
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "kept existing genre" not in out, out
    choices = _index_choices(tmp_path / "index.sqlite", max=2)
    for item in _library(home).items():
        assert list(item.genres) == choices[str(item.filepath)][1].names and len(item.genres) == 2
        assert read_genres(item.filepath) == list(item.genres)
    proc = _beet(home, "ls", "-f", "$title: $genres")  # the field the README names for beets 2.x
    assert all("$genres" not in line and ": " in line for line in proc.stdout.splitlines()), proc.stdout


def test_files_another_stage_rewrites_after_genrifys_are_still_known_on_a_rerun(beets_home, tmp_path):
    """beets' scrub plugin rewrites every imported file after the import stages (as an autotagging import
    does): at the import's end genrify notes the files' new content, so a rerun knows its own genres."""
    from genrify.tagging import committed_songs

    home, music = beets_home
    config = (home / "config.yaml").read_text().replace("plugins: [genrify]", "plugins: [genrify, scrub]")
    config += "scrub:\n  auto: yes\n"
    (home / "config.yaml").write_text(config.replace("genrify:\n", "genrify:\n  overwrite: yes\n"))
    proc = _beet(home, "import", "-q", "-A", music)  # genrify's genres replace the files' own, then scrub runs
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert committed_songs(tmp_path / "index.sqlite") == 3
    (home / "config.yaml").write_text(config)
    proc = _beet(home, "genrify")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and out.count("already tagged by genrify") == 3, out
    assert "kept existing genre" not in out
    assert committed_songs(tmp_path / "index.sqlite") == 3  # nothing analysed again


def test_the_readme_table_lists_every_option_of_the_plugin_beside_lastgenres(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    from beetsplug.genrify import LASTGENRE_KEYS, GenrifyPlugin

    monkeypatch.setenv("BEETSDIR", str(tmp_path))
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("### beets"):]
    section = section[:section.index("\n## ")]
    rows = {m.group(1) for m in re.finditer(r"^\| `([a-z_]+)`", section, re.M)}
    options = set(GenrifyPlugin().config.keys()) | {"source"}
    assert options <= rows, options - rows
    assert all(f"`{name}`" in section for name in LASTGENRE_KEYS.values())
    assert "$genres" in section and "$genre" in section


def test_separator_joins_and_splits_the_one_text_genre_field_of_an_older_beets(tmp_path, monkeypatch):
    from beetsplug.genrify import GenrifyPlugin, _split

    import beets

    monkeypatch.setenv("BEETSDIR", str(tmp_path))
    plugin = GenrifyPlugin()
    plugin.config["separator"] = " / "  # as a user's config.yaml says it, over the plugin's default
    try:
        assert plugin.settings().separator == " / "
    finally:
        beets.config.sources.pop(0)
    assert _split("Jazz / Hip-Hop", " / ") == ["Jazz", "Hip-Hop"] and _split("", ", ") == []
    assert _split("Jazz, Blues", ", ") == ["Jazz", "Blues"]
