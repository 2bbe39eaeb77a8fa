"""PURE: ARMSCII-8, the Armenian 8-bit encoding (AST 34.005:1997), as a Python codec.

Python has no codec for it, so a feed declaring it was read as windows-1252: Latin
mojibake ("²³´µ" for "ԱաԲբ") that no Armenian rule could match. Registered by the parser
(`register()`), it is found under the names feeds use: ARMSCII-8, armscii8, ARMSCII_8.

The table (glibc's, checked against `iconv -f ARMSCII-8` by tests/test_parse.py): ASCII
and the C1 controls below 0xA0, a no-break space at 0xA0, Armenian punctuation at
0xA2-0xB1 and 0xFE, and the 38 letters from 0xB2 as capital, small, capital, small…; 0xA1
and 0xFF are unassigned.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["register"]

_PUNCTUATION = (
    "\u0587\u0589)(\u00bb\u00ab\u2014.\u055d,-\u058a\u2026\u055c\u055b\u055e"  # 0xA2-0xB1
)
_LETTERS = "".join(chr(0x0531 + n) + chr(0x0561 + n) for n in range(38))  # 0xB2-0xFD
_UNASSIGNED = "\ufffe"  # charmap_decode's mark for "no character here"
_TABLE = (
    "".join(map(chr, range(0xA0)))
    + "\u00a0"
    + _UNASSIGNED
    + _PUNCTUATION
    + _LETTERS
    + "\u055a"
    + _UNASSIGNED
)
assert len(_TABLE) == 256
# Encoding: ")(.,-" are both ASCII and Armenian punctuation here; their ASCII bytes win.
_ENCODING = {
    ord(character): byte
    for byte, character in reversed(list(enumerate(_TABLE)))
    if character != _UNASSIGNED
}


def _encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
    return codecs.charmap_encode(text, errors, _ENCODING)


def _decode(data: ReadableBuffer, errors: str = "strict") -> tuple[str, int]:
    return codecs.charmap_decode(data, errors, _TABLE)


class _IncrementalEncoder(codecs.IncrementalEncoder):
    def encode(self, input: str, final: bool = False) -> bytes:
        return _encode(input, self.errors)[0]


class _IncrementalDecoder(codecs.IncrementalDecoder):
    def decode(self, input: ReadableBuffer, final: bool = False) -> str:
        return _decode(input, self.errors)[0]


class _StreamWriter(codecs.StreamWriter):
    encode = staticmethod(_encode)  # type: ignore[assignment]


class _StreamReader(codecs.StreamReader):
    decode = staticmethod(_decode)  # type: ignore[assignment]


_INFO = codecs.CodecInfo(
    name="armscii-8",
    encode=_encode,
    decode=_decode,
    incrementalencoder=_IncrementalEncoder,
    incrementaldecoder=_IncrementalDecoder,
    streamwriter=_StreamWriter,
    streamreader=_StreamReader,
)


def _search(name: str) -> codecs.CodecInfo | None:
    return _INFO if name.lower().replace("-", "").replace("_", "") == "armscii8" else None


_registered = False


def register() -> None:
    """Make `codecs.lookup("ARMSCII-8")` find the codec (once per process)."""
    global _registered
    if not _registered:
        codecs.register(_search)
        _registered = True
