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
