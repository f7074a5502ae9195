#!/usr/bin/env python3
"""pytok.py: a plain Python tokenizer for AG News, the baseline of
tests/bench/pipeline.sh and an independent second implementation of the
rules of agn-tokenize(1), written with regular expressions.

    pytok.py [--stream] [FILE...]

Reads AG News CSV files (gzip recognised by its magic bytes; none or '-'
for stdin) with the csv module.  By default it counts tokens in a dict and
prints the number of examples, tokens and distinct tokens (the job of
agn-tokenize | agn-vocab); with --stream it writes the token stream
("LABEL<TAB>tok tok ...") as agn-tokenize does, which
tests/tokenize-corpus.sh compares byte for byte.

Standard library only, so it runs under any python3.  Keep it in step with
libcommon/tokenizer.c.
"""
import csv
import gzip
import io
import re
import sys

# ---- clean-up: backslashes and character references -----------------------

NAMED = {
    "amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'", "nbsp": "\u00a0",
    "hellip": "\u2026", "mdash": "\u2014", "ndash": "\u2013", "minus": "\u2212",
    "lsquo": "\u2018", "rsquo": "\u2019", "sbquo": "\u201a", "ldquo": "\u201c",
    "rdquo": "\u201d", "bdquo": "\u201e", "laquo": "\u00ab", "raquo": "\u00bb",
    "bull": "\u2022", "middot": "\u00b7", "copy": "\u00a9", "reg": "\u00ae",
    "trade": "\u2122", "deg": "\u00b0", "euro": "\u20ac", "pound": "\u00a3",
    "cent": "\u00a2", "yen": "\u00a5", "sect": "\u00a7", "para": "\u00b6",
    "times": "\u00d7", "divide": "\u00f7", "plusmn": "\u00b1", "iexcl": "\u00a1",
    "iquest": "\u00bf", "shy": "\u00ad", "szlig": "\u00df", "yuml": "\u00ff",
}
_LATIN1 = [  # (name, code point) of the Latin-1 letters with a reference
    ("Agrave", 0xC0), ("Aacute", 0xC1), ("Acirc", 0xC2), ("Atilde", 0xC3), ("Auml", 0xC4),
    ("Aring", 0xC5), ("AElig", 0xC6), ("Ccedil", 0xC7), ("Egrave", 0xC8), ("Eacute", 0xC9),
    ("Ecirc", 0xCA), ("Euml", 0xCB), ("Igrave", 0xCC), ("Iacute", 0xCD), ("Icirc", 0xCE),
    ("Iuml", 0xCF), ("Ntilde", 0xD1), ("Ograve", 0xD2), ("Oacute", 0xD3), ("Ocirc", 0xD4),
    ("Otilde", 0xD5), ("Ouml", 0xD6), ("Oslash", 0xD8), ("Ugrave", 0xD9), ("Uacute", 0xDA),
    ("Ucirc", 0xDB), ("Uuml", 0xDC), ("Yacute", 0xDD),
]
for _name, _cp in _LATIN1:
    NAMED[_name] = chr(_cp)
    NAMED[_name[0].lower() + _name[1:].replace("Elig", "elig")] = chr(_cp + 0x20)
BARE = ("amp", "lt", "gt", "quot", "apos", "nbsp", "hellip")

CP1252 = [0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
          0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0,
          0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
          0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178]


def numeric(n):
    if n == 0 or 0xD800 <= n <= 0xDFFF or n > 0x10FFFF:
        return "\ufffd"
    if 0x80 <= n < 0xA0:
        return chr(CP1252[n - 0x80]) if CP1252[n - 0x80] else " "
    if n < 0x20 or n == 0x7F:
        return " "
    return chr(n)


_names = "|".join(sorted(NAMED, key=len, reverse=True))
_bare = "|".join(BARE)
# Bare forms (no '&') are not taken right after a ';', which is also where
# an earlier reference ended: decoded text is not decoded again.
ENTITY = re.compile(
    r"&#[xX]([0-9A-Fa-f]{1,6});"          # 1: hexadecimal, '&' required
    r"|(&|(?<!;))#([0-9]{1,7});"          # 2, 3: decimal, '&' optional
    r"|&(" + _names + r");"               # 4: named
    r"|(?<![A-Za-z0-9;])(" + _bare + r");",  # 5: bare named
    re.ASCII)


def _entity(m):
    if m.group(1):
        return numeric(int(m.group(1), 16))
    if m.group(3):
        n = int(m.group(3))
        if not m.group(2) and n < 32:
            return m.group(0)
        return numeric(n)
    return NAMED[m.group(4) or m.group(5)]


# ---- split: tags, lower case, tokens ---------------------------------------

TAGS = ("a abbr acronym address b big blockquote body br caption center cite code dd del div dl "
        "dt em embed font form h1 h2 h3 h4 h5 h6 head hr html i iframe img input ins kbd li link "
        "meta nobr object ol p param pre q s script small span strike strong style sub sup table "
        "tbody td th title tr tt u ul wbr").split()
TAG = re.compile(r"<(?:!|/?(?:" + "|".join(TAGS) + r")(?=[ \t\n\r\f\v/>]))[^<>]{0,1024}>",
                 re.ASCII | re.IGNORECASE)

# Non-ASCII characters that are not letters (libcommon/tokenizer.c, uranges)
SPACE, DROP, PUNCT = " ", "", None
URANGES = [
    (0x0080, 0x00A0, SPACE), (0x00A1, 0x00A9, PUNCT), (0x00AB, 0x00AB, '"'),
    (0x00AC, 0x00AC, PUNCT), (0x00AD, 0x00AD, DROP), (0x00AE, 0x00B1, PUNCT),
    (0x00B4, 0x00B4, PUNCT), (0x00B6, 0x00B8, PUNCT), (0x00BB, 0x00BB, '"'),
    (0x00BF, 0x00BF, PUNCT), (0x00D7, 0x00D7, PUNCT), (0x00F7, 0x00F7, PUNCT),
    (0x1680, 0x1680, SPACE), (0x2000, 0x200A, SPACE), (0x200B, 0x200F, DROP),
    (0x2010, 0x2015, "-"), (0x2016, 0x2017, PUNCT), (0x2018, 0x201B, "'"),
    (0x201C, 0x201F, '"'), (0x2020, 0x2025, PUNCT), (0x2026, 0x2026, "..."),
    (0x2027, 0x2027, PUNCT), (0x2028, 0x2029, SPACE), (0x202A, 0x202E, DROP),
    (0x202F, 0x202F, SPACE), (0x2030, 0x2031, PUNCT), (0x2032, 0x2032, "'"),
    (0x2033, 0x2033, '"'), (0x2034, 0x205E, PUNCT), (0x205F, 0x205F, SPACE),
    (0x2060, 0x2064, DROP), (0x20A0, 0x20CF, PUNCT), (0x2190, 0x2211, PUNCT),
    (0x2212, 0x2212, "-"), (0x2213, 0x2BFF, PUNCT), (0x3000, 0x3000, SPACE),
    (0x3001, 0x3003, PUNCT), (0x3008, 0x3011, PUNCT), (0x3014, 0x301F, PUNCT),
    (0xFEFF, 0xFEFF, DROP), (0xFF01, 0xFF0F, PUNCT), (0xFF1A, 0xFF20, PUNCT),
    (0xFF3B, 0xFF40, PUNCT), (0xFF5B, 0xFF65, PUNCT), (0xFFFD, 0xFFFD, PUNCT),
    (0x1F000, 0x1FAFF, PUNCT),
]


def _lower_cp(cp):
    if 0xC0 <= cp <= 0xDE and cp != 0xD7:
        return cp + 0x20
    if 0x100 <= cp <= 0x17F:
        if cp == 0x130:
            return ord("i")
        if cp == 0x178:
            return 0xFF
        if (cp <= 0x137 or 0x14A <= cp <= 0x177) and cp % 2 == 0:
            return cp + 1
        if (0x139 <= cp <= 0x148 or 0x179 <= cp <= 0x17E) and cp % 2 == 1:
            return cp + 1
        return cp
    if cp == 0x386:
        return 0x3AC
    if 0x388 <= cp <= 0x38A:
        return cp + 0x25
    if cp == 0x38C:
        return 0x3CC
    if cp in (0x38E, 0x38F):
        return cp + 0x3F
    if 0x391 <= cp <= 0x3A9 and cp != 0x3A2:
        return cp + 0x20
    if 0x400 <= cp <= 0x40F:
        return cp + 0x50
    if 0x410 <= cp <= 0x42F:
        return cp + 0x20
    return cp


# One translation for everything beyond "lower-case ASCII": controls to
# spaces, non-ASCII spaces, dropped and normalised characters, lower case.
TRANSLATE = {c: " " for c in list(range(0x00, 0x20)) + [0x7F]}
PUNCT_CHARS = []
for _lo, _hi, _what in URANGES:
    for _cp in range(_lo, _hi + 1):
        if _what is PUNCT:
            PUNCT_CHARS.append(_cp)
        else:
            TRANSLATE[_cp] = _what
for _cp in range(0xC0, 0x430):
    if _lower_cp(_cp) != _cp:
        TRANSLATE[_cp] = chr(_lower_cp(_cp))
for _cp in range(ord("A"), ord("Z") + 1):
    TRANSLATE[_cp] = chr(_cp + 32)


def _class_of(cps):
    out, i = [], 0
    cps = sorted(cps)
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        out.append(re.escape(chr(cps[i])) + ("-" + re.escape(chr(cps[j])) if j > i else ""))
        i = j + 1
    return "".join(out)


_ascii_punct = [c for c in range(0x21, 0x7F) if not chr(c).isalnum()]
_punct = _class_of(_ascii_punct + PUNCT_CHARS)
TOKEN = re.compile(r"[^\s\x00-\x1f\x7f" + _punct + r"]+|[" + _punct + r"]")


def tokenize(title, description):
    text = (title + " " + description).replace("\\", " ")
    text = ENTITY.sub(_entity, text)
    text = TAG.sub(" ", text)
    text = text.lower() if text.isascii() else text.translate(TRANSLATE)
    return TOKEN.findall(text)


# ---- main ------------------------------------------------------------------

def open_text(path):
    raw = sys.stdin.buffer if path == "-" else open(path, "rb")
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if head == b"\x1f\x8b":
        raw = gzip.GzipFile(fileobj=raw)
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def main(argv):
    stream = "--stream" in argv
    paths = [a for a in argv if a != "--stream"] or ["-"]
    out = sys.stdout
    counts = {}
    examples = 0
    for path in paths:
        with open_text(path) as f:
            for row in csv.reader(f):
                if not row:
                    continue
                label, title, description = row
                toks = tokenize(title, description)
                examples += 1
                if stream:
                    out.write("%d\t%s\n" % (int(label) - 1, " ".join(toks)))
                else:
                    for t in toks:
                        counts[t] = counts.get(t, 0) + 1
    if not stream:
        print("examples %d tokens %d distinct %d" % (examples, sum(counts.values()), len(counts)))


if __name__ == "__main__":
    main(sys.argv[1:])
