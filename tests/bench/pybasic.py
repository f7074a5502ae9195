#!/usr/bin/env python3
"""pybasic.py: the plain Python baseline of tests/bench/pipeline.sh, the
tokenizer a Python user would write for AG News: the csv module, then
torchtext's basic_english normalisation (lower-case, a handful of regular
expressions that space out punctuation), a split on white space, and a dict
count of the tokens.  Prints examples, tokens and distinct tokens.

    pybasic.py FILE...     (gzip recognised by its magic bytes)

Unlike pytok.py it does not implement agn-tokenize's AG News clean-up; it is
the speed reference the issue names ("a regex basic_english split with a
dict count"), not a second implementation.
"""
import csv
import gzip
import re
import sys

# torchtext.data.utils._basic_english_normalize, verbatim
_patterns = [r"\'", r"\"", r"\.", r"<br \/>", r",", r"\(", r"\)", r"\!", r"\?", r"\;", r"\:", r"\s+"]
_replacements = [" '  ", "", " . ", " ", " , ", " ( ", " ) ", " ! ", " ? ", " ", " ", " "]
_compiled = list((re.compile(p), r) for p, r in zip(_patterns, _replacements))


def basic_english(line):
    line = line.lower()
    for pattern_re, replaced_str in _compiled:
        line = pattern_re.sub(replaced_str, line)
    return line.split()


def open_text(path):
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, "r", encoding="utf-8", newline="")


def main():
    counts = {}
    examples = tokens = 0
    for path in sys.argv[1:]:
        with open_text(path) as f:
            for row in csv.reader(f):
                label = int(row[0]) - 1
                toks = basic_english(row[1] + " " + row[2])
                examples += 1
                tokens += len(toks)
                for t in toks:
                    counts[t] = counts.get(t, 0) + 1
                del label
    print(f"{examples} examples, {tokens} tokens, {len(counts)} distinct")


if __name__ == "__main__":
    main()
