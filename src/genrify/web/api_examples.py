"""Example answers of the JSON API, shown on ``/docs`` (OpenAPI ``responses`` of each route).

Shapes are those the routes return (``tests/test_web.py`` checks each example's keys
against a real answer); numbers are illustrative, base64 images shortened.
"""

from __future__ import annotations

_SONG = {"source": "library", "id": "3f2a9c1d5e7b8a60", "artist": "Max McCracken", "title": "A New Journey",
         "album": None, "duration": 30.0, "genre": None}

PREDICT = {
    "song": _SONG,
    "audio_url": "http://127.0.0.1:8000/api/audio/library/3f2a9c1d5e7b8a60",
    "genre": "Electronic",
    "styles": [],
    "genres": {"Blues": 0.008, "Classical": 0.115, "Electronic": 0.684},
    "verdict": "genre",
    "message": "ok",
    "duration": 30.0,
    "top": [["Electronic", 0.684], ["Classical", 0.115]],
    "probabilities": {"Blues": 0.008, "Classical": 0.115, "Electronic": 0.684},
    "windows": {"starts": [0.0, 2.992], "labels": ["Blues", "Classical", "Electronic"],
                "probabilities": [[0.008, 0.055, 0.71], [0.025, 0.118, 0.66]]},
    "details": {"mode": "full", "music_probability": 1.0},
    "images": {"features": "iVBORw0KGgo…", "features_title": "Log-mel spectrogram: what the model listens to",
               "timeline": "iVBORw0KGgo…"},
    "cached": False,  # true: answered from the analysis cache (the same file's bytes, model and options)
    "elapsed_ms": 812.4,
}

NOT_FOUND = {
    "error": "The song could not be found; searched your library (9 songs)",
    "searched": ["your library (9 songs)"],
    "suggestions": [{"artist": "Shawn Parrotte", "title": "Motion"}],
}

MISSING = {"error": "track: required parameter is missing"}

SEARCH = {"results": [{**_SONG, "audio_url": "http://127.0.0.1:8000/api/audio/library/3f2a9c1d5e7b8a60"}]}

EXAMPLES = {
    "examples": [{"artist": "Max McCracken", "title": "A New Journey", "genre_tag": None}],
    "demo": {"kind": "debian", "note": "Demo songs: freely licensed music from the Debian archive, 30 s clips.",
             "credits": [{"file": "Max McCracken - A New Journey.ogg", "title": "A New Journey",
                          "artist": "Max McCracken", "licence": "CC BY-SA 3.0", "package": "singularity-music",
                          "example": True}]},
}

ORIGINAL = {"response": True, "first": ["Electronic", 0.73], "second": ["Classical", 0.1],
            "mfcc": "iVBORw0KGgo…", "mp3": "http://127.0.0.1:8000/api/audio/library/3f2a9c1d5e7b8a60"}


def example(description: str, body) -> dict:
    """One OpenAPI response entry with a JSON example."""
    return {"description": description, "content": {"application/json": {"example": body}}}
