# -*- coding: utf-8 -*-
"""Write the pickles bucketq must read, as Python itself writes them.

Run by tests/handlers_payload.rs (and the mail tests) with Python 2.7 and Python 3. Prints one
JSON object per line: {"name", "python", "protocol", "hex", "expect"} where `expect` is the JSON
the payload must decode to, or {"name", ..., "hex", "error"} where `error` is a phrase the
decoder's message must contain. Works unchanged on 2.7 and 3.x.
"""
from __future__ import print_function

import binascii
import json
import pickle
import sys

from producer_dict import ISSUE, PY2, Instance, issue_text, text_type, u


def rich():
    d = {
        u("text"): u("line1\nline2 \\ back 'q' \"dq\" 😀 é"),
        u("ints"): [0, 1, -1, 255, 256, 65535, 65536, -2 ** 31, 2 ** 31, 2 ** 40, 2 ** 63 - 1],
        u("floats"): [1.5, -0.25, 1e100],
        u("flags"): [True, False, None],
        u("tuple"): (1, u("two"), (3,)),
        u("nested"): {u("a"): {u("b"): [u("deep")]}},
        u("empty"): {},
        7: u("int key"),
    }
    shared = [u("shared")]
    d[u("ref1")] = shared
    d[u("ref2")] = shared
    if not PY2:
        d["bytes_utf8"] = u("é中").encode("utf-8")
        d["bytes_empty"] = b""
    else:
        d["str_utf8"] = "é中"
    return d


def expected(value):
    """The JSON form of a value: tuples as lists, bytes as UTF-8 text, keys as text."""
    if isinstance(value, dict):
        return dict((text_type(expected_key(k)), expected(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [expected(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(expected(v) for v in value)
    if isinstance(value, bytes) and not PY2:
        return value.decode("utf-8")
    if PY2 and isinstance(value, str):
        return value.decode("utf-8")
    return value


def expected_key(k):
    if isinstance(k, bool) or k is None:
        return json.dumps(k)
    if isinstance(k, bytes) and not PY2:
        return k.decode("utf-8")
    if PY2 and isinstance(k, str):
        return k.decode("utf-8")
    return k if isinstance(k, text_type) else str(k)


def emit(name, protocol, data, expect=None, error=None):
    row = {
        "name": name,
        "python": "%d.%d" % sys.version_info[:2],
        "protocol": protocol,
        "hex": binascii.hexlify(data).decode("ascii"),
    }
    if error is not None:
        row["error"] = error
    else:
        row["expect"] = expect
    print(json.dumps(row, sort_keys=True))


def main():
    protocols = range(0, pickle.HIGHEST_PROTOCOL + 1)
    for p in protocols:
        if PY2:
            # 2.7 producers wrote plain str literals (UTF-8 bytes) as in the issue.
            emit("issue-str", p, pickle.dumps(ISSUE, p), expected(ISSUE))
        emit("issue", p, pickle.dumps(issue_text(), p), expected(issue_text()))
        emit("rich", p, pickle.dumps(rich(), p), expected(rich()))
        if p >= 4:
            sets = {u("tags"): set([u("a")]), u("frozen"): frozenset([u("b")])}
            emit("sets", p, pickle.dumps(sets, p), expected(sets))
        if p >= 5:
            arr = {u("arr"): bytearray(b"xyz")}
            emit("bytearray", p, pickle.dumps(arr, p), {u("arr"): u("xyz")})
        emit("list", p, pickle.dumps([1, 2, 3], p), error="pickle of a list")
        emit("instance", p, pickle.dumps({u("obj"): Instance()}, p), error="only plain data")
        whole = pickle.dumps(issue_text(), p)
        emit("truncated", p, whole[: len(whole) // 2], error="truncated")
    emit("random", -1, binascii.unhexlify("07f3a1c45e0b9d22e8"), error="neither a JSON object nor a Python pickle")


if __name__ == "__main__":
    main()
