"""XML parsed safely: no entity expansion, no DTD loading, no network, no huge trees (billion laughs, XXE)."""

from __future__ import annotations

from lxml import etree

from .model import DocumentError

_SAFE = {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False}
# libxml2 still counts what entity references would amount to, and stops at a limit (its amplification factor); it
# stops at a nesting depth (256) too. Either is an attack, or a document no one writes: refused, never recovered.
_RESOURCE_LIMIT = etree.ErrorTypes.ERR_RESOURCE_LIMIT


def safe_parser() -> etree.XMLParser:
    """A fresh parser for each document: lxml parsers must not be shared between threads."""
    return etree.XMLParser(**_SAFE)


def parse_xml(data: bytes, what: str, *, doctype: bool = True) -> etree._Element:
    """The root element of ``data``, or DocumentError naming ``what`` and the parser's complaint. With
    ``doctype=False`` a document type declaration is refused (seen as the root starts, before any entity is used)."""
    parser = etree.XMLPullParser(events=("start",), **_SAFE)
    try:
        parser.feed(data)
        root = parser.close()
    except etree.XMLSyntaxError as error:
        if not doctype:
            _refuse_doctype(parser, what)
        raise xml_error(error, what) from None
    if root is None:
        raise DocumentError(f"{what} is empty")
    if not doctype:
        _refuse_doctype(parser, what)
    return root


def over_limits(error: etree.XMLSyntaxError) -> bool:
    """The parser stopped at one of its limits (an entity bomb, nesting too deep), not at a syntax error."""
    return bool(error.code == _RESOURCE_LIMIT)


def xml_error(error: etree.XMLSyntaxError, what: str) -> DocumentError:
    if over_limits(error):
        return DocumentError(
            f"{what} is refused: it goes past the XML parser's limits (entities that expand too far, or nesting too "
            f"deep): {error.msg}"
        )
    return DocumentError(f"{what} is not well-formed XML: {error}")


def _refuse_doctype(parser: etree.XMLPullParser, what: str) -> None:
    for _, root in parser.read_events():
        docinfo = root.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
            raise DocumentError(
                f"{what} has a document type declaration (<!DOCTYPE>), which is refused: it could declare entities"
            )
        return


def local_name(node: etree._Element) -> str:
    """An element's tag without its namespace ("{http://www.w3.org/1999/xhtml}p" -> "p"); "" for comments,
    processing instructions and entity references."""
    tag = node.tag
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def namespace(node: etree._Element) -> str | None:
    tag = node.tag
    if not isinstance(tag, str) or not tag.startswith("{"):
        return None
    return tag[1:].partition("}")[0]
