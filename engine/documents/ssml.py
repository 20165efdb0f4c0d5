"""SSML (a W3C SSML 1.1 subset) read into text pieces and exact breaks, by a safe XML parser.

Supported: ``speak`` (the root), ``p``, ``s``, ``break``, ``sub``, ``say-as``, ``prosody`` (``rate`` only) and
``emphasis`` (read as plain text). Any other element, in the SSML namespace or none, is a DocumentError that names
it; so is a document type declaration (a DTD could declare entities: billion laughs, external files). The parser
never expands entities, loads a DTD or touches the network.

``break``: ``time`` ("1.5s", "500ms", at most ``MAX_BREAK_S``) wins over ``strength``, whose silences are
none 0 s, x-weak 0.1 s, weak 0.25 s, medium 0.5 s (a bare ``<break/>``), strong 0.75 s, x-strong 1 s.
``prosody rate``: x-slow 0.5, slow 0.75, medium and default 1, fast 1.25, x-fast 1.5, or a percentage of the
default rate ("80%", between 25% and 400%), as ``SsmlText.rate``. ``p`` and ``s`` end a paragraph and a sentence
(a full stop is added where the text has no end mark). ``say-as interpret-as``: characters (spelled, letters as
capitals: "ttsq" -> "T T S Q"), cardinal, ordinal, date (``format`` mdy, dmy, ymd, md, dm, my, ym or y; without
one, an ISO date "2024-03-05"), telephone (digit by digit, its groups set off by commas).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from lxml import etree

from ..text.numbers import read_dates_and_times, read_numbers
from .model import Document, DocumentError, DocumentLimits
from .plain import Block, write_plain
from .xmlsafe import local_name, namespace, parse_xml

SSML_NAMESPACE = "http://www.w3.org/2001/10/synthesis"
MAX_BREAK_S = 10.0
"""The longest ``<break time>`` accepted, in seconds."""
BREAK_STRENGTHS = {"none": 0.0, "x-weak": 0.1, "weak": 0.25, "medium": 0.5, "strong": 0.75, "x-strong": 1.0}
"""``<break strength>`` as seconds of silence."""
RATES = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "default": 1.0, "fast": 1.25, "x-fast": 1.5}
"""``<prosody rate>`` labels as speaking-rate multipliers (> 1 is faster)."""
MIN_RATE = 0.25
MAX_RATE = 4.0
SUPPORTED = ("speak", "p", "s", "break", "sub", "say-as", "prosody", "emphasis")
SAY_AS = ("characters", "cardinal", "ordinal", "date", "telephone")
_DATE_FORMATS = ("mdy", "dmy", "ymd", "md", "dm", "my", "ym", "y")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_TIME = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(s|ms)")
_PERCENT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)%")
_CARDINAL = re.compile(r"([-+\u2212]?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?")
_ORDINAL = re.compile(r"(\d+)(?:st|nd|rd|th)?", re.IGNORECASE)


@dataclass(frozen=True)
class SsmlText:
    """Text to speak at ``rate`` times the voice's default speaking rate (> 1 is faster); ``\\n\\n`` inside it ends
    a paragraph."""

    text: str
    rate: float = 1.0


@dataclass(frozen=True)
class SsmlBreak:
    """Exactly ``seconds`` of silence."""

    seconds: float


def parse_ssml(data: bytes) -> list[SsmlText | SsmlBreak]:
    """The pieces of an SSML document in order; DocumentError for anything outside the supported subset."""
    root = parse_xml(data, "the SSML document", doctype=False)
    if _name(root) != "speak":
        raise DocumentError(f"the SSML root element must be <speak>, got <{_name(root)}>")
    reader = _Reader()
    reader.element(root, 1.0)
    return reader.finish()


def read_ssml(data: bytes, limits: DocumentLimits) -> Document:
    """SSML as a Document whose text is the pieces' text, each break a paragraph gap (``parse_ssml`` is exact)."""
    blocks: list[Block] = []
    for piece in parse_ssml(data):
        if isinstance(piece, SsmlText):
            blocks.extend(Block("paragraph", paragraph) for paragraph in piece.text.split("\n\n"))
    text, _ = write_plain(blocks)
    limits.check_text(len(text))
    return Document(text=text)


def _name(el: etree._Element) -> str:
    name = local_name(el)
    if namespace(el) not in (None, SSML_NAMESPACE):
        return f"{{{namespace(el)}}}{name}"
    return name


class _Reader:
    """Walks the tree, keeping text runs (with their rates) and breaks; ``finish`` joins them into pieces."""

    def __init__(self) -> None:
        self.pieces: list[SsmlText | SsmlBreak] = []
        self.parts: list[str] = []
        self.rate = 1.0

    def element(self, el: etree._Element, rate: float) -> None:
        name = _name(el)
        if name not in SUPPORTED:
            raise DocumentError(f"SSML element <{name}> is not supported; supported: {', '.join(SUPPORTED)}")
        if name == "break":
            self.silence(_break_seconds(el))
        elif name == "sub":
            alias = el.get("alias")
            if alias is None:
                raise DocumentError("SSML <sub> needs an alias attribute (what to say instead of its text)")
            self.text(alias, rate)
        elif name == "say-as":
            self.text(_say_as(el), rate)
        else:
            if name == "prosody":
                rate = _rate(el, rate)
            if name in ("p", "s"):
                self.end_sentence(paragraph=name == "p")  # what came before is a sentence (paragraph) of its own
            self.text(el.text, rate)
            for child in el:
                if isinstance(child.tag, str):
                    if _name(child) == "speak":
                        raise DocumentError("SSML <speak> is the root element; it cannot be nested")
                    self.element(child, rate)
                elif isinstance(child, etree._Entity):
                    raise DocumentError(f"SSML entity reference &{child.name}; is not supported")
                self.text(child.tail, rate)
            if name in ("p", "s"):
                self.end_sentence(paragraph=name == "p")

    def text(self, text: str | None, rate: float) -> None:
        if not text:
            return
        if rate != self.rate and "".join(self.parts).strip():
            self.flush()
        self.rate = rate
        self.parts.append(re.sub(r"\s+", " ", text))

    def end_sentence(self, *, paragraph: bool) -> None:
        current = "".join(self.parts)
        ended = current.rstrip()
        if not ended or current[len(ended) :].count("\n\n"):
            return  # nothing yet, or a paragraph has just ended
        if ended[-1].isalnum():
            ended += "."
        self.parts = [ended + ("\n\n" if paragraph else " ")]

    def silence(self, seconds: float) -> None:
        self.flush()
        self.pieces.append(SsmlBreak(seconds))

    def flush(self) -> None:
        paragraphs = (" ".join(paragraph.split()) for paragraph in "".join(self.parts).split("\n\n"))
        text = "\n\n".join(paragraph for paragraph in paragraphs if paragraph)
        self.parts = []
        if text:
            self.pieces.append(SsmlText(text, self.rate))

    def finish(self) -> list[SsmlText | SsmlBreak]:
        self.flush()
        return self.pieces


def _only_text(el: etree._Element, name: str) -> str:
    """The text of an element that may hold nothing else (``say-as``)."""
    for child in el:
        if isinstance(child.tag, str):
            raise DocumentError(f"SSML <{name}> may hold only text, got <{_name(child)}> inside it")
    return "".join(el.itertext())


def _break_seconds(el: etree._Element) -> float:
    if len(el) or (el.text or "").strip():
        raise DocumentError("SSML <break> must be empty")
    time = el.get("time")
    if time is not None:
        match = _TIME.fullmatch(time.strip())
        if match is None:
            raise DocumentError(f"SSML <break time> must be like '1.5s' or '500ms', got {time!r}")
        seconds = float(match[1]) / (1000 if match[2] == "ms" else 1)
        if seconds > MAX_BREAK_S:
            raise DocumentError(f"SSML <break time={time!r}> is longer than the {MAX_BREAK_S:g} s allowed")
        return seconds
    strength = el.get("strength", "medium").strip()
    if strength not in BREAK_STRENGTHS:
        raise DocumentError(f"SSML <break strength> must be one of {', '.join(BREAK_STRENGTHS)}, got {strength!r}")
    return BREAK_STRENGTHS[strength]


def _rate(el: etree._Element, rate: float) -> float:
    for attribute in el.attrib:
        if attribute != "rate":
            raise DocumentError(f"SSML <prosody> supports only the rate attribute, got {attribute}")
    value = el.get("rate")
    if value is None:
        return rate
    value = value.strip()
    if value in RATES:
        return RATES[value]
    match = _PERCENT.fullmatch(value)
    multiplier = float(match[1]) / 100 if match else None
    if multiplier is None or not MIN_RATE <= multiplier <= MAX_RATE:
        raise DocumentError(
            f"SSML <prosody rate> must be one of {', '.join(RATES)} or a percentage from {MIN_RATE:.0%} to "
            f"{MAX_RATE:.0%}, got {value!r}"
        )
    return multiplier


def _say_as(el: etree._Element) -> str:
    kind = (el.get("interpret-as") or "").strip()
    text = " ".join(_only_text(el, "say-as").split())
    if kind not in SAY_AS:
        raise DocumentError(f"SSML <say-as interpret-as> must be one of {', '.join(SAY_AS)}, got {kind!r}")
    if kind == "characters":
        return " ".join(ch.upper() for ch in text if not ch.isspace())
    if kind == "telephone":
        return _telephone(text)
    if kind == "date":
        return _date(text, (el.get("format") or "").strip().lower())
    pattern = _CARDINAL if kind == "cardinal" else _ORDINAL
    match = pattern.fullmatch(text)
    if match is None:
        raise DocumentError(f"SSML <say-as interpret-as={kind!r}> cannot read {text!r} as a number")
    if kind == "ordinal":
        return read_numbers(match[1] + _ordinal_suffix(int(match[1])))
    sign = "minus " if match[1] in ("-", "\u2212") else ""
    return sign + read_numbers(match[2] + (match[3] or ""))


def _ordinal_suffix(number: int) -> str:
    if number % 100 in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")


def _telephone(text: str) -> str:
    groups = re.findall(r"\d+", text)
    if not groups:
        raise DocumentError(f"SSML <say-as interpret-as='telephone'> has no digits in {text!r}")
    spoken = ", ".join(" ".join(read_numbers(digit) for digit in group) for group in groups)
    return ("plus " if text.startswith("+") else "") + spoken


def _date(text: str, form: str) -> str:
    """ "3/5/2024" with format "mdy" -> "March fifth, twenty twenty-four" (as engine.text reads an ISO date)."""
    fields = re.findall(r"\d+", text)
    if not form:
        form = "ymd"  # an ISO date, "2024-03-05"
    if form not in _DATE_FORMATS:
        raise DocumentError(f"SSML <say-as format> for a date must be one of {', '.join(_DATE_FORMATS)}, got {form!r}")
    if len(fields) != len(form):
        raise DocumentError(f"SSML <say-as interpret-as='date' format={form!r}> cannot read {text!r} as a date")
    parts = dict(zip(form, (int(field) for field in fields), strict=True))
    year, month, day = parts.get("y", 2000), parts.get("m", 1), parts.get("d", 1)
    try:
        datetime.date(year, month, day)
    except ValueError:
        raise DocumentError(f"SSML <say-as interpret-as='date'>: {text!r} is not a date ({form})") from None
    if "y" in parts and "m" in parts and "d" in parts:
        return read_dates_and_times(f"{year:04d}-{month:02d}-{day:02d}")
    if "m" in parts and "d" in parts:
        return read_numbers(f"{_MONTHS[month - 1]} {day}")
    if "m" in parts:
        return f"{_MONTHS[month - 1]} {read_numbers(str(year))}"
    return read_numbers(str(year))
