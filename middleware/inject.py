"""Where koekje's tags go into a page, found without breaking it.

A ``</head>`` inside a comment, a script string, a style sheet or a template is not the end of the head, so
a plain search would put the banner inside someone's script or comment it out. ``HeadScanner`` walks the
markup the way an HTML parser does, just enough to skip comments, raw-text elements (script, style,
textarea, title, ...) and templates, and finds:

- the first ``<script`` start tag in the head: Consent Mode's default must run before any script;
- the end of the head: ``</head>``, or the ``<body>`` start tag of a page that omits ``</head>``.

Hand-written: html.parser and friends decode and rebuild the document; this needs byte offsets in a page
that arrives in pieces, without copying it. The walk is one regular expression, so the head of a page costs
one pass in C, not a Python step per tag; while the head is incomplete it is tried again only once the page
has doubled, so a page in tiny pieces still costs linear time.
"""

from __future__ import annotations

import re


def _ci(word: bytes) -> bytes:
    """``word`` in either case, as a pattern: cheaper than compiling the whole walk with IGNORECASE."""
    return b"".join(b"[%c%c]" % (c, c ^ 0x20) if chr(c).isalpha() else re.escape(bytes([c])) for c in word)


_RAW_TAGS = (
    b"script",
    b"style",
    b"textarea",
    b"title",
    b"xmp",
    b"iframe",
    b"noembed",
    b"noframes",
    b"template",
)
_RAW = b"|".join(_ci(tag) for tag in _RAW_TAGS)
_HEAD, _BODY = _ci(b"head"), _ci(b"body")
# What may stand between a tag's name and its ">": runs of plain characters, and attribute values; a quote
# opens a value only right after "=" and must be closed (a value may contain ">", and a page that arrives in
# pieces may end inside one).
_ATTRIBUTES = rb"""(?:[^>="']++|=\s*"[^"]*"|=\s*'[^']*'|=(?!\s*["'])|["'])*+"""


def _walk(stop_at_script: bool) -> re.Pattern[bytes]:
    """Markup that is not the end of the head (nor, when asked, a script): text, comments, declarations,
    raw-text elements with their content, other tags. Possessive: it never backtracks, so no input costs
    more than linear time. (No capturing groups: CPython 3.11's re mishandles them in possessive loops.)"""
    raw = [tag for tag in _RAW_TAGS if not (stop_at_script and tag == b"script")]
    # A raw-text element whole, up to its end tag: runs of text at C speed, never a lazy ".*?".
    elements = b"|".join(
        _ci(t)
        + rb"(?=[\s/>])"
        + _ATTRIBUTES
        + rb">(?:[^<]++|<(?!/"
        + _ci(t)
        + rb"[\s/>]))*+</"
        + _ci(t)
        + rb"[\s/>]"
        for t in raw
    )
    # Most common first: text, then tags whose first letter no raw-text element (nor body) has.
    return re.compile(
        rb"(?:"
        rb"[^<]++"  # text
        rb"|<(?![sStTxXiInNbB])[A-Za-z][A-Za-z0-9-]*+" + _ATTRIBUTES + rb">"  # most start tags
        rb"|</(?!" + _HEAD + rb"[\s/>])[A-Za-z][^>]*+>"  # end tags
        rb"|<(?=[sStTxXiInN])(?:" + elements + rb")"  # raw text, to its end tag
        rb"|<(?!(?:"
        + _BODY
        + b"|"
        + _RAW
        + rb")[\s/>])[A-Za-z][A-Za-z0-9-]*+"
        + _ATTRIBUTES
        + rb">"  # the rest
        rb"|<!--(?:[^-]++|-(?!-!?>))*+--!?>"  # a comment
        rb"|<(?!!--)[!?][^>]*+>"  # <!DOCTYPE>, <?...>
        rb"|</?(?![!?/A-Za-z])"  # a "<" or "</" in text
        rb")*+",
    )


_TO_HEAD_END = _walk(stop_at_script=False)
_TO_SCRIPT = _walk(stop_at_script=True)
_HEAD_END = re.compile(rb"</" + _HEAD + rb"[\s/>]|<" + _BODY + rb"[\s/>]")
_SCRIPT = re.compile(rb"<" + _ci(b"script") + rb"[\s/>]")


class HeadScanner:
    __slots__ = ("_tried_at", "head_end")

    def __init__(self) -> None:
        self._tried_at = 0  # the page's length when the walk last stopped short of the head's end
        self.head_end: int | None = None

    def feed(self, data: bytes | bytearray, final: bool = False) -> bool:
        """Look at ``data`` (everything received so far; ``final`` when that is all); True once the end of
        the head is known (``head_end``)."""
        if self.head_end is not None:
            return True
        n = len(data)
        if n < 2 * self._tried_at and not final:
            return False
        end = _TO_HEAD_END.match(data).end()  # type: ignore[union-attr]  # matches, if only the empty string
        if _HEAD_END.match(data, end) is None:
            self._tried_at = max(n, 1)  # incomplete (or broken) markup at ``end``: wait for more
            return False
        self.head_end = end
        return True

    def first_script(self, data: bytes | bytearray) -> int | None:
        """Where the first script of the head starts, if one does (after ``feed`` found the head's end)."""
        assert self.head_end is not None
        script = _TO_SCRIPT.match(data, 0, self.head_end).end()  # type: ignore[union-attr]
        return script if _SCRIPT.match(data, script) is not None else None
