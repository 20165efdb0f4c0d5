"""Text to phoneme ids with piper-tts' espeak-ng phonemizer and id map."""

from __future__ import annotations

import threading

from piper.config import PhonemeType, PiperConfig
from piper.phoneme_ids import phonemes_to_ids
from piper.phonemize_espeak import ESPEAK_DATA_DIR, EspeakPhonemizer

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
    return [s for s in sentences if s]


def sentence_ids(text: str, config: PiperConfig) -> list[list[int]]:
    """Phoneme ids, one list per sentence, with BOS/EOS and padding as the model expects."""
    return [phonemes_to_ids(phonemes, config.phoneme_id_map) for phonemes in phonemize(text, config)]
