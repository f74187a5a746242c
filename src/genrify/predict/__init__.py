"""Prediction: a model file → the genres of songs.

``resolve``     :func:`resolve_model`: a ``--model`` value (a file, or a built-in name) → a :class:`ModelRef`
``runtime``     :class:`Runtime`: engine, mode, precision and threads, decided once per classifier
``classifier``  :func:`load_classifier`, the one inference front (a model → a classifier planned for this
                process), :class:`GenreClassifier` (``from_file``, ``predict``, ``predict_proba``,
                ``analyse``) and :class:`Analysis`, whose ``to_dict`` is the one JSON view of an answer
``backends``    audio → per-window probabilities, one backend per registry kind
``heads``       heads over musicnn embeddings: logits and the one song softmax
``checks``      silence / noise / tone checks and the verdict rules
``batch``       :func:`analyse_many`: many files, optionally over worker processes
``inputs``      the model's input for a song as an image to show, with its fixed colour scale
"""

from genrify.predict.batch import FileResult, analyse_many
from genrify.predict.classifier import Analysis, GenreClassifier, load_classifier
from genrify.predict.resolve import ModelRef, default_model_path, resolve_model
from genrify.predict.runtime import Runtime

__all__ = ["Analysis", "FileResult", "GenreClassifier", "ModelRef", "Runtime", "analyse_many", "default_model_path",
           "load_classifier", "resolve_model"]
