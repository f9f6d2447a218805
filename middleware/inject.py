"""Where koekje's tags go into a page, found without breaking it.

A ``</head>`` inside a comment, a script string, a style sheet or a template is not the end of the head, so
a plain search would put the banner inside someone's script or comment it out. ``HeadScanner`` walks the
markup the way an HTML parser does, just enough to skip comments (as browsers end them), raw-text elements
(script, with its escaped states; style, textarea, title, noscript, ...) and templates, and finds:

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


# Elements whose content is text up to their own end tag (noscript too: browsers run scripts).
# (Most common in a head first: each alternative is tried in order.)
_TEXT_TAGS = (b"title", b"style", b"noscript", b"textarea", b"xmp", b"iframe", b"noembed", b"noframes")
_SPECIAL = b"|".join(_ci(tag) for tag in (*_TEXT_TAGS, b"script", b"template", b"body"))
_HEAD, _SCRIPT_NAME, _TEMPLATE = _ci(b"head"), _ci(b"script"), _ci(b"template")
# What may stand between a tag's name and its ">": runs of plain characters, and attribute values; a quote
# opens a value only right after "=" and must be closed (a value may contain ">", and a page that arrives in
# pieces may end inside one).
_ATTRIBUTES = rb"""(?:[^>="']++|=\s*"[^"]*"|=\s*'[^']*'|=(?!\s*["'])|["'])*+"""
_END = rb"[\s/>]"  # what may follow a tag name
# Comments as browsers end them: "<!-->" and "<!--->" are whole (empty) comments; "--!>" ends one too.
_COMMENT = rb"<!--(?:-?>|(?:[^-]++|-(?!-!?>))*+--!?>)"
# Bogus comments: "<!DOCTYPE ...>", "<?...>", and "</" not followed by a letter, up to the next ">".
_BOGUS = rb"<(?:!(?!--)|\?|/(?![A-Za-z]))[^>]*+>"


def _text_element(tag: bytes) -> bytes:
    name = _ci(tag)
    return (
        b"<"
        + name
        + rb"(?="
        + _END
        + rb")"
        + _ATTRIBUTES
        + rb">(?:[^<]++|<(?!/"
        + name
        + _END
        + rb"))*+</"
        + name
        + _END
    )


def _script_element() -> bytes:
    """A script up to its real end tag. Inside "<!--" a script is *escaped*, and there "<script" makes it
    *double escaped*: a "</script>" then does not end it (HTML's script data states)."""
    name, end = _SCRIPT_NAME, b"</" + _SCRIPT_NAME + _END
    double = rb"(?:[^<-]++|-(?!->)|<(?!/" + name + _END + rb"))*+"
    escaped = (
        rb"(?:[^<-]++|-(?!->)|<(?!/" + name + _END + b"|" + name + _END + rb")|<" + name + _END + double
        + rb"(?:" + end + rb"|(?=-->)))*+"
    )  # fmt: skip
    data = (
        rb"(?:[^<]++|<!---*>|<!--"
        + escaped
        + rb"(?:-->|(?="
        + end
        + rb"))|<(?!/"
        + name
        + _END
        + rb"|!--))*+"
    )
    return b"<" + name + rb"(?=" + _END + rb")" + _ATTRIBUTES + b">" + data + end


def _template_element(inner: bytes) -> bytes:
    """A template up to its end tag, its scripts and text elements whole; a nested template is not
    followed (the walk stops there, and nothing is inserted)."""
    name = _TEMPLATE
    # A "<" that is not the start of an element followed whole: an unfinished one stops the walk here.
    content = (
        rb"(?:[^<]++|" + inner + rb"|<(?!/" + name + _END + rb"|(?:" + _SPECIAL + rb")" + _END + rb"|!--))*+"
    )
    return b"<" + name + rb"(?=" + _END + rb")" + _ATTRIBUTES + b">" + content + rb"</" + name + _END


def _walk(stop_at_script: bool) -> re.Pattern[bytes]:
    """Markup that is not the end of the head (nor, when asked, a script): text, comments, raw-text
    elements with their content, templates, other tags. Possessive: it never backtracks, so no input costs
    more than linear time. (No capturing groups: CPython 3.11's re mishandles them in possessive loops.)"""
    texts = b"|".join(_text_element(tag) for tag in _TEXT_TAGS)
    inner = texts + b"|" + _script_element() + b"|" + _COMMENT
    script = b"" if stop_at_script else _script_element() + b"|"
    specials = script + texts + b"|" + _template_element(inner)
    # Most common first: text, then tags whose first letter no special element has.
    return re.compile(
        rb"(?:"
        rb"[^<]++"  # text
        rb"|<(?![sStTxXiInNbB])[A-Za-z][A-Za-z0-9-]*+" + _ATTRIBUTES + rb">"  # most start tags
        rb"|</(?!" + _HEAD + _END + rb")[A-Za-z][^>]*+>"  # end tags
        rb"|(?=<[sStTxXiInN])(?:" + specials + rb")"  # raw text and templates, whole
        rb"|<(?!(?:" + _SPECIAL + rb")" + _END + rb")[A-Za-z][A-Za-z0-9-]*+" + _ATTRIBUTES + rb">"  # the rest
        rb"|" + _COMMENT + rb"|" + _BOGUS + rb"|<(?![!?/A-Za-z])"  # comments, bogus comments, a "<" in text
        rb")*+",
    )


_TO_HEAD_END = _walk(stop_at_script=False)
# The walk and the check that it stopped at the head's end, in one call: the common case of a whole page.
_AT_HEAD_END = re.compile(
    _TO_HEAD_END.pattern + rb"(?=</" + _HEAD + _END + rb"|<" + _ci(b"body") + _END + b")"
)
_TO_SCRIPT = _walk(stop_at_script=True)
_HEAD_END = re.compile(rb"</" + _HEAD + _END + rb"|<" + _ci(b"body") + _END)
_SCRIPT = re.compile(rb"<" + _SCRIPT_NAME + _END)


# Heads whose first "</head" the walk found to be their end, by the hash of everything up to and including
# the character after it (all the walk's answer depended on). A site serves the same few heads over and over:
# for those, one hash in C instead of the walk. Only hashes are kept, never a page's text; Python's bytes
# hash is keyed per process (SipHash), so nobody can make a head collide with another on purpose.
_KNOWN_HEADS: dict[int, None] = {}
_MAX_KNOWN_HEADS = 4096
# The same for a page that also gets the banner's markup, by the hash of everything up to the end of its
# body start tag: the head's end, where the body's content begins, and the page's language.
_KNOWN_PAGES: dict[int, tuple[int, int, str | None]] = {}


class HeadScanner:
    """Finds where the tags go. ``head_end`` is the end of the head; when the walk meets markup it does not
    follow (a nested template, an attribute value that never closes) or the page ends without a head end,
    the tags go where the walk stopped instead (``fallback``): still in the head, before anything unknown."""

    __slots__ = ("_limit", "_tried_at", "body", "fallback", "head_end", "lang")

    def __init__(self, limit: int) -> None:
        self._limit = limit  # bytes of the page that are looked at, at most
        self._tried_at = 0  # the page's length when the walk last stopped short of the head's end
        self.head_end: int | None = None
        self.fallback = False
        # Only from ``whole(..., body=True)``: where the body's content begins and the page's language.
        self.body: int | None = None
        self.lang: str | None = None

    def whole(self, data: bytes | bytearray, body: bool = False) -> bool:
        """``feed`` for a page that came in one piece: the common case, in one call to the walk (or none,
        for a head the walk has seen before). With ``body``, also where the body's content begins
        (``body_start``) and the page's language (``page_language``), unless the walk fell back."""
        if not body:
            return self._whole(data)
        first = data.find(b"</head", 0, self._limit)
        tag = data.find(b"<body", first, self._limit) if first >= 0 else -1
        tag_end = data.find(b">", tag, self._limit) if tag >= 0 else -1
        key = hash(bytes(data[: tag_end + 1])) if tag_end >= 0 else None
        known = _KNOWN_PAGES.get(key) if key is not None else None
        if known is not None:
            self.head_end, self.body, self.lang = known
            return True
        found = self._whole(data)
        if found and not self.fallback:
            assert self.head_end is not None
            self.body = body_start(data, self.head_end, True)
            self.lang = page_language(data, self.head_end)
            # Cached only when every answer came from the hashed bytes: the walk stopped at the first
            # "</head", and the body's start tag is the first "<body" after it.
            if key is not None and self.head_end == first and self.body == tag_end + 1:
                if len(_KNOWN_PAGES) >= _MAX_KNOWN_HEADS:
                    _KNOWN_PAGES.clear()
                _KNOWN_PAGES[key] = (self.head_end, self.body, self.lang)
        return found

    def _whole(self, data: bytes | bytearray) -> bool:
        first = data.find(b"</head", 0, self._limit)
        key = hash(bytes(data[: first + 7])) if 0 <= first < len(data) - 7 else None
        if key is not None and key in _KNOWN_HEADS:
            self.head_end = first
            return True
        found = _AT_HEAD_END.match(data, 0, self._limit)
        if found is None:
            return self.feed(data, final=True)  # markup it does not follow: the fallback, if any
        self.head_end = found.end()
        if key is not None and self.head_end == first:
            if len(_KNOWN_HEADS) >= _MAX_KNOWN_HEADS:
                _KNOWN_HEADS.clear()
            _KNOWN_HEADS[key] = None
        return True

    def feed(self, data: bytes | bytearray, final: bool = False) -> bool:
        """Look at ``data`` (everything received so far; ``final`` when no more will be looked at); True
        once the place for the tags is known (``head_end``)."""
        if self.head_end is not None:
            return True
        n = min(len(data), self._limit)
        if n < 2 * self._tried_at and not final:
            return False
        end = _TO_HEAD_END.match(data, 0, n).end()  # type: ignore[union-attr]  # matches, if only ""
        if _HEAD_END.match(data, end, n) is not None:
            self.head_end = end
            return True
        if final and 0 < end < n:
            self.head_end, self.fallback = end, True
            return True
        self._tried_at = max(n, 1)  # incomplete markup at ``end``: wait for more
        return False

    def first_script(self, data: bytes | bytearray) -> int | None:
        """Where the first script of the head starts, if one does (after ``feed`` found the head's end)."""
        assert self.head_end is not None
        script = _TO_SCRIPT.match(data, 0, self.head_end).end()  # type: ignore[union-attr]
        return script if _SCRIPT.match(data, script) is not None else None


# After the head's end: "</head>", then space and comments, then (usually) the body's start tag.
_AFTER_HEAD = re.compile(rb"(?:</" + _HEAD + rb"\s*+>)?(?:\s++|" + _COMMENT + rb")*+")
_BODY_TAG = re.compile(rb"<" + _ci(b"body") + rb"(?=" + _END + rb")" + _ATTRIBUTES + rb">")
_HTML_LANG = re.compile(
    rb"<" + _ci(b"html") + rb"(?=" + _END + rb")[^>]*?\s" + _ci(b"lang") + rb"\s*=\s*[\"']?([A-Za-z]{2,8})"
)


def body_start(data: bytes | bytearray, head_end: int, final: bool) -> int | None:
    """Where the body's content begins: just after ``<body ...>`` (space and comments after the head
    skipped), or, for a page without a body tag there, just after the head (the banner then starts the
    body, as the tag would have). None while the data may still be in the middle of that tag."""
    at = _AFTER_HEAD.match(data, head_end).end()  # type: ignore[union-attr]  # matches, if only ""
    tag = _BODY_TAG.match(data, at)
    if tag is not None:
        return tag.end()
    rest = bytes(data[at : at + 5]).lower()
    if final:
        return at
    if (
        not rest
        or b"<body"[: len(rest)] == rest
        or (rest.startswith((b"<!", b"</")) and data.find(b">", at) < 0)
    ):
        return None
    return at


def page_language(data: bytes | bytearray, head_end: int) -> str | None:
    """The primary language the page's ``<html lang>`` names, if it does."""
    found = _HTML_LANG.search(data, 0, head_end)
    return found[1].decode("ascii") if found is not None else None
