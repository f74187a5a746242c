"""Tagging a whole library: the results index and tag journal, which names to write, and the job that writes them."""

from genrify.tagging.analyser import Analyser, local_analyser
from genrify.tagging.choose import Choice, ChoiceConfig, NameRules, choose, choose_album, load_names
from genrify.tagging.index import ResultsIndex, committed_songs, default_index_path
from genrify.tagging.journal import TagJournal
from genrify.tagging.job import JobSummary, TagJobConfig, analyse_files, export_rows, record_song, run_tag_job
from genrify.tagging.stage import SongResult, analyse_song, file_facts

__all__ = ["Analyser", "Choice", "ChoiceConfig", "JobSummary", "NameRules", "ResultsIndex", "SongResult",
           "TagJobConfig", "TagJournal", "analyse_files", "analyse_song", "choose", "choose_album", "committed_songs",
           "default_index_path", "export_rows", "file_facts", "load_names", "local_analyser", "record_song",
           "run_tag_job"]
