"""Where koekje's tags go into a page, found without breaking it.

A ``</head>`` inside a comment, a script string, a style sheet or a template is not the end of the head, so
a plain search would put the banner inside someone's script or comment it out. ``HeadScanner`` walks the
markup the way an HTML parser does, just enough to skip comments, raw-text elements (script, style,
textarea, title, ...) and templates, and finds:

- the first ``<script`` start tag in the head: Consent Mode's default must run before any script;
- the end of the head: ``</head>``, or the ``<body>`` start tag of a page that omits ``</head>``.

Hand-written: html.parser and friends decode and rebuild the document; this needs byte offsets in a page
that arrives in pieces, without copying it. It resumes where it stopped when more of the page arrives.
"""

from __future__ import annotations

import re

_RAW_TEXT = frozenset(
    {b"script", b"style", b"textarea", b"title", b"xmp", b"iframe", b"noembed", b"noframes", b"template"}
)
_TAG_NAME = re.compile(rb"[A-Za-z][A-Za-z0-9-]*")
_COMMENT_END = re.compile(rb"--!?>")


class HeadScanner:
    def __init__(self) -> None:
        self._pos = 0
        self._raw_end: re.Pattern[bytes] | None = None  # inside a raw-text element: its end tag
        self.first_script: int | None = None
        self.head_end: int | None = None

    def feed(self, data: bytes | bytearray) -> bool:
        """Scan ``data`` (everything received so far) from where the last call stopped; True once the end
        of the head is known."""
        n = len(data)
        while self.head_end is None:
            if self._raw_end is not None:
                match = self._raw_end.search(data, self._pos)
                if match is None:
                    self._pos = max(self._pos, n - 16)  # the end tag may straddle the next piece
                    return False
                self._pos, self._raw_end = match.start(), None
                continue
            lt = data.find(b"<", self._pos)
            if lt < 0 or lt + 1 >= n:
                self._pos = n if lt < 0 else lt
                return False
            after = data[lt + 1 : lt + 2]
            if data.startswith(b"<!--", lt):
                comment = _COMMENT_END.search(data, lt + 4)
                if comment is None:
                    self._pos = lt
                    return False
                self._pos = comment.end()
            elif after in (b"!", b"?"):
                end = data.find(b">", lt)
                if end < 0:
                    self._pos = lt
                    return False
                self._pos = end + 1
            elif after == b"/":
                closing = _TAG_NAME.match(data, lt + 2)
                if closing is None or closing.end() >= n:
                    if closing is None and lt + 2 < n:
                        self._pos = lt + 1  # "</ " or "</3": text, not a tag
                        continue
                    self._pos = lt
                    return False
                if closing[0].lower() == b"head":
                    self.head_end = lt
                    return True
                self._pos = closing.end()
            else:
                name = _TAG_NAME.match(data, lt + 1)
                if name is None:
                    self._pos = lt + 1  # a "<" in text
                    continue
                end = _tag_end(data, name.end())
                if end < 0:
                    self._pos = lt
                    return False
                tag = name[0].lower()
                if tag == b"body":
                    self.head_end = lt
                    return True
                if tag == b"script" and self.first_script is None:
                    self.first_script = lt
                if tag in _RAW_TEXT:  # "<script/>" opens a script too: HTML has no self-closing here
                    self._raw_end = re.compile(rb"</" + re.escape(tag) + rb"[\s/>]", re.IGNORECASE)
                self._pos = end
        return True


def _tag_end(data: bytes | bytearray, i: int) -> int:
    """The offset just past a start tag's ``>`` (quoted attribute values may contain ``>``); -1 when the
    tag is not complete yet."""
    n = len(data)
    while i < n:
        char = data[i]
        if char == 0x3E:  # >
            return i + 1
        if char in (0x22, 0x27):  # " or '
            close = data.find(bytes((char,)), i + 1)
            if close < 0:
                return -1
            i = close + 1
        else:
            i += 1
    return -1
