"""Text to phoneme ids with piper-tts' espeak-ng phonemizer and id map."""

from __future__ import annotations

import threading

from piper import espeakbridge
from piper.config import PhonemeType, PiperConfig
from piper.phoneme_ids import phonemes_to_ids
from piper.phonemize_espeak import ESPEAK_DATA_DIR, EspeakPhonemizer

from .constants import MAX_SENTENCE_PHONEMES
from .errors import InvalidInputError

# espeak-ng keeps global state (the current voice, its buffers): one caller at a time.
_LOCK = threading.Lock()
_PHONEMIZER: EspeakPhonemizer | None = None


def phonemize(text: str, config: PiperConfig) -> list[list[str]]:
    """Phonemes grouped by sentence, exactly as espeak-ng splits them."""
    global _PHONEMIZER
    if config.phoneme_type != PhonemeType.ESPEAK:
        raise InvalidInputError(f"phoneme type {config.phoneme_type.value!r} is not supported; expected 'espeak'")
    with _LOCK:
        if _PHONEMIZER is None:
            _PHONEMIZER = EspeakPhonemizer(ESPEAK_DATA_DIR)
        sentences = _PHONEMIZER.phonemize(config.espeak_voice, text, vowel_clusters=config.vowel_clusters)
        _drain()
    return [s for s in sentences if s]


def _drain() -> None:
    """Leave espeak-ng with nothing carried over to the next call.

    A text that ends in "..", as "He stopped.." or "A line.\n ." does once normalised, leaves its second period in
    espeak-ng's input state, and the next text then starts with "dot" (issue 16). An empty text consumes what was
    left, silently (5 µs). Only after a voice is set: before one, espeak-ng crashes on any text.
    """
    espeakbridge.get_phonemes("")


def split_long(phonemes: list[str], limit: int = MAX_SENTENCE_PHONEMES) -> list[list[str]]:
    """Split a run longer than ``limit`` at its last clause mark (or else word gap) before the limit."""
    pieces: list[list[str]] = []
    while len(phonemes) > limit:
        window = phonemes[:limit]
        cut = _last_index(window, (",", ";", ":")) or _last_index(window, (" ",)) or limit - 1
        pieces.append(phonemes[: cut + 1])
        phonemes = phonemes[cut + 1 :]
    if phonemes:
        pieces.append(phonemes)
    return pieces


def _last_index(items: list[str], marks: tuple[str, ...]) -> int | None:
    for index in range(len(items) - 1, 0, -1):
        if items[index] in marks:
            return index
    return None


def sentence_ids(text: str, config: PiperConfig) -> list[list[int]]:
    """Phoneme ids, one list per sentence (over-long ones split), with BOS/EOS and padding as the model expects."""
    return [
        phonemes_to_ids(piece, config.phoneme_id_map)
        for phonemes in phonemize(text, config)
        for piece in split_long(phonemes)
    ]
