"""Model files built and saved, not fitted: a real window network of the registry at its seeded initial weights.

``write_seeded_model(path, name="mlp", seed=0)`` writes a ``.genrify`` file through
:func:`genrify.models.modelfile.save_model_file`, exactly the file format ``genrify
train`` writes: the full :class:`~genrify.config.RunConfig` (default audio, features
and windows; ``model.name`` and ``train.seed`` set), the label list, the network's
``state_dict`` at the weights :func:`genrify.models.build_model` gives after
``torch.manual_seed(seed)``, and normalisation statistics computed by the training
code (:func:`genrify.train.nets.normalisation_stats`) from the features of one
generated clip per label. Loading it with ``GenreClassifier.from_file`` takes the
same path as a trained file; only the answers carry no learned meaning.

Use it where a test needs *a* model (the classifier's input contract, file
handling, serialisation), not a trained one: building it takes about a second,
training one takes minutes. The untrained ``mlp`` is chosen as the default because
its answers move with the input (window probabilities vary by more than 0.1 on
generated songs), so tests that compare answers can still fail; an untrained ``cnn``
answers close to uniform (its dense layer and batch norm start small).
"""

from __future__ import annotations

import os

#: The synthetic styles, sorted as training sorts its labels.
LABELS = ("classical", "edm", "hiphop", "jazz", "metal")
#: Seconds of each generated clip the normalisation statistics are computed from.
STATS_SECONDS = 6.0


def seeded_model_file(*, name: str = "mlp", seed: int = 0):
    """A :class:`~genrify.models.modelfile.ModelFile` holding registry network ``name`` (a ``window-net``)
    at its initial weights under ``seed``, labelled :data:`LABELS`, with normalisation statistics of a
    generated clip of each label."""
    import torch

    from genrify.config import ModelConfig, RunConfig, TrainConfig
    from genrify.dataset.windows import window_frames
    from genrify.features import FeatureExtractor
    from genrify.models import WINDOW_NET, build_model, model_spec
    from genrify.models.modelfile import ModelFile, network_tensors
    from genrify.sources.synthetic import generate_clip
    from genrify.train.nets import normalisation_stats

    if model_spec(name).kind != WINDOW_NET:
        raise ValueError(f"{name!r} is not a window network of the registry")
    config = RunConfig(model=ModelConfig(name=name), train=TrainConfig(seed=seed))
    size, _, _ = window_frames(config)
    # Seed a forked generator: the weights depend on ``seed`` only, and the suite's global RNG is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_model(config.model, n_features=config.features.n_features, n_frames=size,
                          n_classes=len(LABELS))
    extractor = FeatureExtractor(config.features)
    images = [extractor.transform(generate_clip(style, seed=seed, sr=config.features.sr, duration=STATS_SECONDS))
              for style in LABELS]
    tensors = network_tensors(net)
    tensors["norm.mean"], tensors["norm.std"] = normalisation_stats(images)
    return ModelFile(config=config, labels=list(LABELS), tensors=tensors, extra={"seed": seed})


def write_seeded_model(path: str | os.PathLike, *, name: str = "mlp", seed: int = 0):
    """Save :func:`seeded_model_file` to ``path`` (atomically, by genrify's model-file code) and return it."""
    from genrify.models.modelfile import save_model_file

    model = seeded_model_file(name=name, seed=seed)
    save_model_file(path, model)
    return model


def write_raw_model(path, header: bytes, *, data_bytes: int = 0):
    """Write a file of an 8-byte header length, ``header`` and ``data_bytes`` of zeros (sparse: nothing
    written), as a hostile or damaged model file would be laid out; returns ``path``."""
    import struct

    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + data_bytes)
    return path
