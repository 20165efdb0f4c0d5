"""engine.documents: text, Markdown, HTML, EPUB and SSML read into the plain form the splitter narrates, and every
malformed or hostile document refused with a DocumentError (never another exception, nothing expanded or run)."""

from __future__ import annotations

import io
import time
import zipfile

import pytest
from ebooklib import epub
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.documents import (
    Document,
    DocumentError,
    DocumentLimits,
    DocumentTooLargeError,
    SsmlBreak,
    SsmlText,
    format_for,
    parse_ssml,
    read_document,
)
from engine.errors import InvalidInputError
from engine.text.split import split_text

CHAPTERS = ["The Harbour", "Fog at Noon", "A Letter", "The Crossing", "Home Again"]
COVER = b"\x89PNG\r\n\x1a\n" + b"cover" * 20


def headings(document: Document) -> list[str]:
    """The sources of the chunks the splitter takes for headings."""
    return [chunk.source for chunk in split_text(document.text) if chunk.heading]


def assert_structure(document: Document, chapters: list[str], sections: tuple[str, ...] = ()) -> None:
    """Each chapter is a level-1 heading chunk, each section a level-2 one, and nothing else is a heading."""
    assert document.chapters == chapters
    found = headings(document)
    assert [source[2:] for source in found if source.startswith("# ")] == chapters
    assert tuple(source[3:] for source in found if source.startswith("## ")) == sections
    assert len(found) == len(chapters) + len(sections)


# --- EPUB ----------------------------------------------------------------------------------------------------


def make_epub(*, nav: bool = True, ncx: bool = True) -> bytes:
    """A realistic EPUB 3 (ebooklib's writer): cover image and page, a title page, five chapters, nav and NCX."""
    book = epub.EpubBook()
    book.set_identifier("urn:uuid:test-book")
    book.set_title("Harbour Lights")
    book.set_language("en")
    book.add_author("Ann Example")
    book.set_cover("cover.png", COVER)
    title_page = epub.EpubHtml(title="Title page", file_name="title.xhtml", content=(
        "<h1>Harbour Lights</h1><p>by Ann Example.</p><p>Copyright 2024 Ann Example.</p>"
    ))  # fmt: skip
    book.add_item(title_page)
    chapters = []
    for number, title in enumerate(CHAPTERS, start=1):
        chapter = epub.EpubHtml(title=title, file_name=f"chapter{number}.xhtml", content=(
            f"<h1>{title}</h1><p>The story of part {number} begins&nbsp;here.</p><p>It goes on for a while.</p>"
        ))  # fmt: skip
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    if ncx:
        book.add_item(epub.EpubNcx())
    if nav:
        book.add_item(epub.EpubNav())
    book.spine = ["cover", title_page, *(["nav"] if nav else []), *chapters]
    out = io.BytesIO()
    epub.write_epub(out, book)
    return out.getvalue()


def test_epub_reads_metadata_cover_and_five_chapters_in_spine_order() -> None:
    document = read_document(make_epub(), "epub", DocumentLimits())
    assert document.title == "Harbour Lights"
    assert document.author == "Ann Example"
    assert (document.cover, document.cover_type) == (COVER, "image/png")
    assert_structure(document, CHAPTERS)
    # The spine's order, each chapter's nav title once (its own repeated <h1> dropped), &nbsp; read as a space.
    positions = [document.text.index(f"The story of part {number} begins here.") for number in range(1, 6)]
    assert positions == sorted(positions)
    assert document.text.startswith("# The Harbour\n\nThe story of part 1 begins here.")
    # Front matter is not read: the title page (before the first chapter), the nav document, the cover page.
    assert "Copyright" not in document.text and "by Ann" not in document.text
    assert document.text.count("Harbour Lights") == 0
    level_one = [chunk for chunk in split_text(document.text) if chunk.heading and chunk.source.startswith("# ")]
    assert [chunk.source for chunk in level_one] == [f"# {title}" for title in CHAPTERS]


def test_epub2_ncx_alone_gives_the_same_chapters() -> None:
    document = read_document(make_epub(nav=False), "epub", DocumentLimits())
    assert_structure(document, CHAPTERS)


OPF = """<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="id">x</dc:identifier><dc:title>Hand Made</dc:title>
    <dc:creator id="a1">Ann</dc:creator><dc:creator id="i1">Ivo Illustrator</dc:creator>
    <meta refines="#i1" property="role">ill</meta>
  </metadata>
  <manifest>{manifest}</manifest>
  <spine>{spine}</spine>
</package>"""
CONTAINER = """<?xml version="1.0"?>
<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container" version="1.0">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"""
XHTML = '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><body{attrs}>{body}</body></html>'


def hand_epub(documents: dict[str, str], spine: list[str], nav: str | None = None, extra: str = "") -> bytes:
    """An EPUB built with zipfile: ``documents`` (id -> body markup) under OEBPS/, spine by id, an optional nav."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        archive.writestr("META-INF/container.xml", CONTAINER)
        items = [f'<item id="{i}" href="{i}.xhtml" media-type="application/xhtml+xml"/>' for i in documents]
        for name, body in documents.items():
            attrs = ' epub:type="titlepage"' if name == "titlepage" else ""
            whole = body.startswith("<!DOCTYPE")  # a whole document, not a body
            archive.writestr(f"OEBPS/{name}.xhtml", body if whole else XHTML.format(attrs=attrs, body=body))
        if nav is not None:
            items.append('<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>')
            archive.writestr("OEBPS/nav.xhtml", XHTML.format(attrs="", body=nav))
        refs = "".join(f'<itemref idref="{i}"/>' for i in spine)
        archive.writestr("OEBPS/content.opf", OPF.format(manifest="".join(items) + extra, spine=refs))
    return out.getvalue()


def test_epub_nav_fragments_nested_entries_and_marked_front_matter() -> None:
    nav = (
        '<nav epub:type="toc"><ol><li><a href="titlepage.xhtml">Title Page</a></li>'
        '<li><a href="book.xhtml#one">Part One</a><ol><li><a href="book.xhtml#s1">Early Days</a></li></ol></li>'
        '<li><a href="book.xhtml#two">Part Two</a></li></ol></nav>'
    )
    book = (
        '<h1 id="one">Part One</h1><p>Opening words.</p><h2 id="s1">Early Days</h2><p>They were young.</p>'
        '<h3>Aside</h3><p>An aside.</p><p id="two">Part Two</p><p>Later words.</p>'
    )
    data = hand_epub({"titlepage": "<h1>Hand Made</h1><p>By Ann.</p>", "book": book}, ["titlepage", "book"], nav)
    document = read_document(data, "epub", DocumentLimits())
    assert (document.title, document.author) == ("Hand Made", "Ann")  # the illustrator is not an author
    assert document.cover is None
    assert_structure(document, ["Part One", "Part Two"], ("Early Days", "Aside"))
    assert "By Ann" not in document.text  # a title page marked epub:type="titlepage" is skipped, nav or not
    assert document.text.index("They were young.") < document.text.index("# Part Two") < document.text.index("Later")


def test_epub_chapters_nested_under_parts_in_their_own_files_are_chapters() -> None:
    nav = (
        '<nav epub:type="toc"><ol><li><a href="p1.xhtml">Part One</a><ol>'
        '<li><a href="c1.xhtml">The Start</a></li><li><a href="c2.xhtml">The Middle</a></li></ol></li></ol></nav>'
    )
    documents = {"p1": "<h1>Part One</h1>", "c1": "<p>Words of one.</p>", "c2": "<p>Words of two.</p>"}
    document = read_document(hand_epub(documents, ["p1", "c1", "c2"], nav), "epub", DocumentLimits())
    assert_structure(document, ["Part One", "The Start", "The Middle"])


def test_epub_without_navigation_uses_the_documents_own_headings() -> None:
    data = hand_epub(
        {"a": "<h1>First</h1><p>Some text.</p>", "b": "<h2>Second</h2><h3>Sub</h3><p>More.</p>"}, ["a", "b"]
    )
    assert_structure(read_document(data, "epub", DocumentLimits()), ["First", "Second"], ("Sub",))


@pytest.mark.parametrize(
    ("spine", "extra", "message"),
    [
        (["a", "ghost"], "", "'ghost', which is not in its manifest"),
        (["a", "lost"], '<item id="lost" href="lost.xhtml" media-type="application/xhtml+xml"/>', "not in the archive"),
        ([], "", "spine is empty"),
    ],
)
def test_epub_whose_spine_points_nowhere_is_refused(spine: list[str], extra: str, message: str) -> None:
    data = hand_epub({"a": "<p>Text.</p>"}, spine, extra=extra)
    with pytest.raises(DocumentError, match=message):
        read_document(data, "epub", DocumentLimits())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PK\x03\x04 this is not really a zip", "not a valid zip archive"),
        (b"plain words", "not a valid zip archive"),
        (b"", "not a valid zip archive"),
    ],
)
def test_not_a_zip_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(DocumentError, match=message):
        read_document(data, "epub", DocumentLimits())


def test_a_zip_that_is_not_an_epub_is_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(DocumentError, match=r"no META-INF/container\.xml"):
        read_document(out.getvalue(), "epub", DocumentLimits())


def test_zip_bomb_with_many_entries_is_refused_before_reading() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for index in range(60):
            archive.writestr(f"f{index}", b"")
    with pytest.raises(DocumentTooLargeError, match="60 files; the limit is 50"):
        read_document(out.getvalue(), "epub", DocumentLimits(max_entries=50))


def test_zip_bomb_with_one_huge_compressible_entry_is_refused_before_inflating() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("META-INF/container.xml", CONTAINER)
        archive.writestr("OEBPS/content.opf", b"\0" * (8 * 1024 * 1024))
    data = out.getvalue()
    assert len(data) < 64 * 1024  # 8 MiB of zeros in a few kilobytes
    started = time.perf_counter()
    with pytest.raises(DocumentTooLargeError, match="uncompressed"):
        read_document(data, "epub", DocumentLimits(max_uncompressed_bytes=1024 * 1024))
    assert time.perf_counter() - started < 1


def test_epub_xml_entities_are_never_expanded_or_fetched() -> None:
    declared = '<!DOCTYPE html [<!ENTITY word "lol"><!ENTITY secret SYSTEM "file:///etc/passwd">]>'
    page = f'{declared}<html xmlns="http://www.w3.org/1999/xhtml"><body><p>Safe&word;&secret; text.</p></body></html>'
    assert read_document(hand_epub({"a": page}, ["a"]), "epub", DocumentLimits()).text == "Safe text."


def test_epub_entity_bomb_is_refused() -> None:
    laughs = "".join(f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, 10))
    page = f'<!DOCTYPE html [<!ENTITY l0 "lol">{laughs}]><html><body><p>&l9;</p></body></html>'
    started = time.perf_counter()
    with pytest.raises(DocumentError, match=r"'OEBPS/a\.xhtml' is refused: .*entities that expand too far"):
        read_document(hand_epub({"a": page}, ["a"]), "epub", DocumentLimits())
    assert time.perf_counter() - started < 1


# --- Markdown and HTML ---------------------------------------------------------------------------------------

MARKDOWN = b"""---
title: Field Notes
author: [Ann Example, Bo Second]
---
# Spring

The first buds came early.

## Summer

Long days followed.

- swimming in the lake
- reading

### Evenings

Short line

```
print("not read")
```

| Month | Rain |
|-------|------|
| June  | 12   |
"""

HTML = b"""<!DOCTYPE html><html><head><title>Field Notes</title><meta name="author" content="Ann Example">
<style>p { color: red }</style></head><body>
<nav><a href="/">Home</a></nav>
<h1>Spring</h1><p>The first buds came <em>early</em>.</p>
<h2>Summer</h2><p>Long days
followed.</p><ul><li>swimming in the lake</li><li>reading</li></ul>
<h3>Evenings</h3><div>Short line</div><pre><code>print("not read")</code></pre><noscript>Enable it.</noscript>
<template><p>Hidden template.</p></template>
<table><tr><th>Month</th><th>Rain</th></tr><tr><td>June</td><td>12</td></tr></table>
</body></html>"""


@pytest.mark.parametrize(("data", "fmt"), [(MARKDOWN, "markdown"), (HTML, "html")])
def test_markdown_and_html_headings_become_chapters_and_sections(data: bytes, fmt: str) -> None:
    document = read_document(data, fmt, DocumentLimits())
    assert_structure(document, ["Spring", "Summer"], ("Evenings",))
    assert document.title == "Field Notes"
    assert document.author == ("Ann Example, Bo Second" if fmt == "markdown" else "Ann Example")
    assert "not read" not in document.text and "title:" not in document.text
    assert "Home" not in document.text and "color" not in document.text and "Enable" not in document.text
    assert "- swimming in the lake\n- reading" in document.text
    assert "Short line." in document.text  # a body line gets its full stop, and is no heading
    assert "Month, Rain." in document.text and "June, 12." in document.text


def test_markdown_and_html_give_the_same_text() -> None:
    markdown = read_document(MARKDOWN, "markdown", DocumentLimits())
    html = read_document(HTML, "html", DocumentLimits())
    assert markdown.text == html.text


def test_body_text_that_looks_like_a_heading_stays_body_text() -> None:
    document = read_document(b"<h1>Title</h1><p># 1 seller</p><p>Thanks</p>", "html", DocumentLimits())
    assert document.text == "# Title\n\n1 seller.\n\nThanks."
    assert headings(document) == ["# Title"]


@pytest.mark.parametrize(
    ("html", "what"),
    [
        (b"<p>Hi.</p><script>alert(1)</script>", "<script> element"),
        (b"<p onclick='steal()'>Hi.</p>", "onclick on <p>"),
        (b"<body onload=go()><p>Hi.</p></body>", "onload on <body>"),
        (b"<p><a href=' java\nscript:go()'>Hi.</a></p>", "script URL \\(href on <a>\\)"),
    ],
)
def test_html_with_scripts_is_refused(html: bytes, what: str) -> None:
    with pytest.raises(DocumentError, match=what):
        read_document(html, "html", DocumentLimits())


# --- SSML ----------------------------------------------------------------------------------------------------


def ssml(body: str) -> bytes:
    return f'<speak version="1.1" xmlns="http://www.w3.org/2001/10/synthesis">{body}</speak>'.encode()


def test_ssml_break_time_is_exact() -> None:
    assert parse_ssml(ssml('Wait <break time="1.5s"/> now <break time="250ms"/> go.')) == [
        SsmlText("Wait"),
        SsmlBreak(1.5),
        SsmlText("now"),
        SsmlBreak(0.25),
        SsmlText("go."),
    ]


@pytest.mark.parametrize(
    ("strength", "seconds"),
    [("none", 0.0), ("x-weak", 0.1), ("weak", 0.25), ("medium", 0.5), ("strong", 0.75), ("x-strong", 1.0)],
)
def test_ssml_break_strengths(strength: str, seconds: float) -> None:
    assert parse_ssml(ssml(f'<break strength="{strength}"/>')) == [SsmlBreak(seconds)]


def test_ssml_bare_break_is_medium_and_time_wins_over_strength() -> None:
    assert parse_ssml(ssml('<break/><break strength="weak" time="2s"/>')) == [SsmlBreak(0.5), SsmlBreak(2.0)]


@pytest.mark.parametrize(
    ("markup", "spoken"),
    [
        ('<say-as interpret-as="characters">ttsq</say-as>', "T T S Q"),
        ('<say-as interpret-as="cardinal">1,234</say-as>', "one thousand two hundred and thirty-four"),
        ('<say-as interpret-as="cardinal">-7</say-as>', "minus seven"),
        ('<say-as interpret-as="ordinal">21</say-as>', "twenty-first"),
        ('<say-as interpret-as="ordinal">12th</say-as>', "twelfth"),
        ('<say-as interpret-as="date" format="mdy">3/5/2024</say-as>', "March fifth, twenty twenty-four"),
        ('<say-as interpret-as="date" format="dmy">5.3.2024</say-as>', "March fifth, twenty twenty-four"),
        ('<say-as interpret-as="date">2024-03-05</say-as>', "March fifth, twenty twenty-four"),
        ('<say-as interpret-as="date" format="md">12/25</say-as>', "December twenty-fifth"),
        ('<say-as interpret-as="telephone">555-0123</say-as>', "five five five, zero one two three"),
        ('<sub alias="World Wide Web">WWW</sub>', "World Wide Web"),
        ("<emphasis>really</emphasis>", "really"),
    ],
)
def test_ssml_say_as_sub_and_emphasis(markup: str, spoken: str) -> None:
    assert parse_ssml(ssml(markup)) == [SsmlText(spoken)]


def test_ssml_prosody_rate_and_paragraphs() -> None:
    pieces = parse_ssml(ssml('<p><s>One</s><s>Two</s></p><p>Three <prosody rate="80%">slowly</prosody></p>'))
    assert pieces == [SsmlText("One. Two.\n\nThree"), SsmlText("slowly.", rate=0.8)]
    assert parse_ssml(ssml('<prosody rate="x-fast">Quick.</prosody>')) == [SsmlText("Quick.", rate=1.5)]


def test_ssml_document_text_is_the_plain_concatenation() -> None:
    document = read_document(ssml('<p>Hello there</p><break time="1s"/>General Kenobi.'), "ssml", DocumentLimits())
    assert document.text == "Hello there.\n\nGeneral Kenobi."


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('<audio src="x.wav"/>', "SSML element <audio> is not supported; supported: speak, p, s, break"),
        ('<break time="12s"/>', "longer than the 10 s allowed"),
        ('<break time="soon"/>', "must be like '1.5s'"),
        ('<break strength="loud"/>', "strength> must be one of none, x-weak"),
        ('<prosody pitch="high">x</prosody>', "supports only the rate attribute, got pitch"),
        ('<prosody rate="1000%">x</prosody>', "prosody rate> must be one of"),
        ('<say-as interpret-as="spell-out">x</say-as>', "interpret-as> must be one of characters"),
        ('<say-as interpret-as="cardinal">many</say-as>', "cannot read 'many' as a number"),
        ('<say-as interpret-as="date" format="mdy">13/40/2024</say-as>', "is not a date"),
        ("<sub>WWW</sub>", "needs an alias"),
        ("<p>unclosed", "not well-formed XML"),
    ],
)
def test_ssml_outside_the_subset_is_refused_with_a_clear_error(body: str, message: str) -> None:
    with pytest.raises(DocumentError, match=message):
        parse_ssml(ssml(body))


def test_ssml_root_must_be_speak() -> None:
    with pytest.raises(DocumentError, match="root element must be <speak>, got <p>"):
        parse_ssml(b"<p>Hi.</p>")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE speak [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<speak>&lol9;</speak>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE speak [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<speak>&secret;</speak>"""
EXTERNAL_DTD = b'<?xml version="1.0"?><!DOCTYPE speak SYSTEM "http://127.0.0.1:9/ssml.dtd"><speak>Hi.</speak>'


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD])
def test_ssml_with_a_doctype_is_refused_and_nothing_is_expanded_or_fetched(data: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(DocumentError, match="document type declaration") as raised:
        read_document(data, "ssml", DocumentLimits())
    assert "lollol" not in str(raised.value) and "root:" not in str(raised.value)
    assert time.perf_counter() - started < 1


# --- limits, formats, dispatch -------------------------------------------------------------------------------


def test_limits_apply_to_the_upload_and_to_the_extracted_text() -> None:
    with pytest.raises(DocumentTooLargeError, match="the upload has 101 bytes; the limit is 100"):
        read_document(b"x" * 101, "text", DocumentLimits(max_bytes=100))
    long = b"# Title\n\n" + b"Words and words. " * 100
    with pytest.raises(DocumentTooLargeError, match="text has") as raised:
        read_document(long, "markdown", DocumentLimits(max_chars=1000))
    assert raised.value.limit == 1000
    with pytest.raises(DocumentTooLargeError):
        read_document(make_epub(), "epub", DocumentLimits(max_chars=100))
    assert issubclass(DocumentTooLargeError, DocumentError) and issubclass(DocumentError, InvalidInputError)


def test_plain_text_passes_through() -> None:
    text = "# Chapter One\n\nIt was a dark night."
    assert read_document(text.encode(), "text", DocumentLimits()) == Document(text=text)
    with pytest.raises(DocumentError, match="not UTF-8 text"):
        read_document(b"caf\xe9", "text", DocumentLimits())
    with pytest.raises(DocumentError, match="no text to read"):
        read_document(b"<p> </p>", "html", DocumentLimits())
    with pytest.raises(DocumentError, match="unknown document format 'pdf'; expected one of: text, markdown"):
        read_document(b"x", "pdf", DocumentLimits())


@pytest.mark.parametrize(
    ("content_type", "filename", "fmt"),
    [
        ("text/plain; charset=utf-8", None, "text"),
        ("text/markdown", "notes.txt", "markdown"),
        ("TEXT/HTML", None, "html"),
        ("application/epub+zip", None, "epub"),
        ("application/ssml+xml", None, "ssml"),
        (None, "Book.EPUB", "epub"),
        ("application/octet-stream", "notes.markdown", "markdown"),
        ("", "page.htm", "html"),
        (None, "speech.ssml", "ssml"),
        (None, "a.md", "markdown"),
    ],
)
def test_format_for(content_type: str | None, filename: str | None, fmt: str) -> None:
    assert format_for(content_type, filename) == fmt


@pytest.mark.parametrize(("content_type", "filename"), [("application/pdf", "a.pdf"), (None, None), (None, "a.doc")])
def test_format_for_unknown_lists_the_accepted(content_type: str | None, filename: str | None) -> None:
    with pytest.raises(DocumentError, match=r"expected a content type of text/plain, .* or a file ending in \.txt"):
        format_for(content_type, filename)


# --- fuzz ----------------------------------------------------------------------------------------------------

FORMATS = ["text", "markdown", "html", "epub", "ssml"]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID_EPUB = make_epub()


def read_or_refuse(data: bytes, fmt: str) -> None:
    """Either a Document or a DocumentError: any other exception fails the test."""
    try:
        document = read_document(data, fmt, DocumentLimits(max_uncompressed_bytes=4 * 1024 * 1024))
    except DocumentError:
        return
    assert isinstance(document.text, str)


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(data=st.binary(max_size=2048))
def test_fuzz_random_bytes_are_read_or_refused(fmt: str, data: bytes) -> None:
    read_or_refuse(data, fmt)


@pytest.mark.parametrize("fmt", ["markdown", "html", "ssml"])
@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("<>/&;#!-=*`[]()\"' \n\tabp:speakbrtime1s")), max_size=300))
def test_fuzz_markup_like_text_is_read_or_refused(fmt: str, text: str) -> None:
    read_or_refuse(text.encode(), fmt)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, len(VALID_EPUB) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_fuzz_corrupted_epub_is_read_or_refused(edits: list[tuple[int, int]]) -> None:
    data = bytearray(VALID_EPUB)
    for offset, value in edits:
        data[offset] = value
    read_or_refuse(bytes(data), "epub")


@FUZZ
@given(cut=st.integers(0, len(VALID_EPUB)))
def test_fuzz_truncated_epub_is_read_or_refused(cut: int) -> None:
    read_or_refuse(VALID_EPUB[:cut], "epub")
