"""Configuration: frozen dataclasses that round-trip through a model file's JSON, spelled once."""

from __future__ import annotations

import dataclasses
import json

import pytest

from genrify.config import (
    MUSICNN_FEATURES,
    MUSICNN_PATCH_FRAMES,
    MUSICNN_WINDOW,
    AudioConfig,
    FeatureConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    VerdictConfig,
    WindowConfig,
    musicnn_run_config,
)
from genrify.errors import ConfigError


def test_a_run_config_round_trips_through_json():
    config = RunConfig(features=FeatureConfig(kind="logmel", n_mels=64), model=ModelConfig(name="mlp", hidden=(64, 32)),
                       train=TrainConfig(seed=7), verdict=VerdictConfig(unsure_below=0.5))
    again = RunConfig.from_json(config.to_json())
    assert again == config
    assert isinstance(again.model.hidden, tuple) and isinstance(again.verdict, VerdictConfig)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().model.name = "mlp"  # type: ignore[misc]


def test_unknown_fields_and_kinds_are_refused():
    data = RunConfig().to_dict()
    data["model"]["layers"] = 3
    with pytest.raises(ConfigError, match="unknown ModelConfig field"):
        RunConfig.from_dict(data)
    with pytest.raises(ConfigError, match="unknown feature kind"):
        FeatureConfig(kind="chroma")
    with pytest.raises(ConfigError):
        RunConfig.from_dict({"audio": [44100]})


def test_a_config_written_before_a_section_existed_gets_that_sections_defaults():
    data = RunConfig().to_dict()
    del data["verdict"]
    assert RunConfig.from_json(json.dumps(data)).verdict == VerdictConfig()


def test_frames_for_counts_centred_stft_frames():
    fc = FeatureConfig()  # 44.1 kHz, hop 512: the original's 2584 frames for 30 s
    assert fc.frames_for(30.0) == 2584
    assert fc.n_features == 10 and FeatureConfig(kind="logmel").n_features == 128


def test_musicnn_input_is_spelled_once():
    assert MUSICNN_FEATURES.sr == 16000 and MUSICNN_FEATURES.n_mels == 96 and MUSICNN_FEATURES.hop_length == 256
    # One window is one 187-frame patch, at every hop.
    assert round(MUSICNN_WINDOW.seconds * MUSICNN_FEATURES.sr / MUSICNN_FEATURES.hop_length) == MUSICNN_PATCH_FRAMES
    assert MUSICNN_WINDOW.seconds == MUSICNN_WINDOW.hop_seconds == MUSICNN_WINDOW.train_hop_seconds
    from genrify.features import musicnn

    assert (musicnn.SR, musicnn.N_FFT, musicnn.HOP_LENGTH, musicnn.N_MELS, musicnn.PATCH_FRAMES) == (
        MUSICNN_FEATURES.sr, MUSICNN_FEATURES.n_fft, MUSICNN_FEATURES.hop_length, MUSICNN_FEATURES.n_mels,
        MUSICNN_PATCH_FRAMES)


def test_musicnn_run_config_keeps_the_model_training_and_duration_settings():
    base = RunConfig(audio=AudioConfig(max_duration=120.0, min_duration=2.0), model=ModelConfig(name="musicnn-probe", C=0.1),
                     train=TrainConfig(seed=3))
    config = musicnn_run_config(base)
    assert config.features == MUSICNN_FEATURES and config.window == MUSICNN_WINDOW
    assert config.audio == AudioConfig(sr=16000, max_duration=120.0, min_duration=2.0)
    assert config.model == base.model and config.train == base.train


@pytest.mark.parametrize(("argv", "fields"), [
    (["train", "x.gdb"], {"epochs": TrainConfig.epochs, "lr": TrainConfig.lr, "batch_size": TrainConfig.batch_size,
                          "weight_decay": TrainConfig.weight_decay, "patience": TrainConfig.patience,
                          "seed": TrainConfig.seed, "val_fraction": TrainConfig.val_fraction, "C": ModelConfig.C,
                          "dropout": ModelConfig.dropout, "window": WindowConfig.seconds, "model": ModelConfig.name}),
    (["dataset", "build", "root", "--out", "x.gdb"], {"sr": FeatureConfig.sr, "n_mfcc": FeatureConfig.n_mfcc,
                                                     "n_fft": FeatureConfig.n_fft, "hop_length": FeatureConfig.hop_length,
                                                     "n_mels": FeatureConfig.n_mels, "features": FeatureConfig.kind,
                                                     "max_duration": AudioConfig.max_duration}),
])
def test_command_line_defaults_are_the_configs_defaults(argv, fields):
    from genrify.cli import build_parser

    args = build_parser().parse_args(argv)
    assert {k: getattr(args, k) for k in fields} == fields
    assert tuple(int(h) for h in getattr(args, "hidden", "600").split(",")) == ModelConfig.hidden


def test_serve_and_tag_take_every_default_from_their_dataclasses(capsys):
    from genrify.cli import build_parser, resolve_defaults
    from genrify.cli.serve import _settings
    from genrify.cli.tag import job_config
    from genrify.tagging import ChoiceConfig, TagJobConfig
    from genrify.web.settings import Settings

    parser = build_parser()
    # Every option left out gives its field's default, so the whole config is the dataclass's own.
    assert _settings(resolve_defaults(parser.parse_args(["serve"]))) == Settings()
    assert job_config(resolve_defaults(parser.parse_args(["tag", "music"]))) == TagJobConfig()
    given = job_config(resolve_defaults(parser.parse_args(["tag", "music", "--max", "3", "--level", "both"])))
    assert given.choice == ChoiceConfig(max=3, level="both")
    with pytest.raises(SystemExit):
        parser.parse_args(["tag", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for said in (f"the finer styles, or both (default: {ChoiceConfig.level})",
                 f"names of each level (default: {ChoiceConfig.max})",
                 f"at or above this probability, 0-1 (default: {ChoiceConfig.min_certainty})",
                 f"analyse in this many processes (default: {TagJobConfig.workers})"):
        assert said in shown


def test_the_tag_commands_defaults_are_read_without_importing_numpy_until_needed():
    import subprocess
    import sys

    code = ("import sys; from genrify.cli import build_parser, resolve_defaults; p = build_parser(); "
            "p.format_help(); a = p.parse_args(['tag', 'x']); print('numpy' in sys.modules); "
            "resolve_defaults(a); print(a.level, a.max, a.min_certainty, a.workers)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    from genrify.tagging import ChoiceConfig, TagJobConfig

    assert out == ["False", ChoiceConfig.level, str(ChoiceConfig.max), str(ChoiceConfig.min_certainty),
                   str(TagJobConfig.workers)]
