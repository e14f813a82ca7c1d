# -*- coding: utf-8 -*-
"""A producer as bucketq's users run one today: Python pickling (or JSON-encoding) a dict and
writing it as a task object. Used by the tests/flow_*.rs end-to-end tests.

    produce.py SPEC --local DIR          drop each task as a plain file under DIR (the local
                                         store's directory): written beside it, then renamed
                                         in, as `mv` would
    produce.py SPEC --s3 ENDPOINT BUCKET put each task with boto3 (as an oss2 producer would)
    produce.py SPEC --print              only print what would be written

SPEC is a JSON list of {"key", "kind", "protocol"} (or {"key", "hex"} for bytes another Python
made). Prints one JSON line per task: {"key", "size", "md5", "hex"} (plus "etag" for --s3).
Works unchanged on Python 2.7 and 3.x, so each can write the pickles it writes in production.
"""
from __future__ import print_function

import binascii
import hashlib
import json
import os
import pickle
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from producer_dict import ISSUE, PY2, Instance, issue_text, u  # noqa: E402


def payload(item):
    kind = item.get("kind")
    protocol = item.get("protocol", 2)
    if "hex" in item:
        return binascii.unhexlify(item["hex"])
    if kind == "issue":
        return pickle.dumps(issue_text(), protocol)
    if kind == "issue-str":
        # Python 2 producers pickled plain `str` literals: UTF-8 bytes.
        assert PY2, "issue-str is what Python 2.7 writes"
        return pickle.dumps(ISSUE, protocol)
    if kind == "json":
        return json.dumps(issue_text()).encode("ascii")
    if kind == "json-utf8":
        return json.dumps(issue_text(), ensure_ascii=False).encode("utf-8")
    if kind == "list":
        return pickle.dumps([1, 2, 3], protocol)
    if kind == "instance":
        return pickle.dumps({u("obj"): Instance()}, protocol)
    if kind == "truncated":
        whole = pickle.dumps(issue_text(), protocol)
        return whole[: len(whole) // 2]
    if kind == "random":
        # Random bytes that start like neither JSON nor a pickle.
        return b"\x07" + os.urandom(40)
    if kind == "json-array":
        return json.dumps([issue_text()]).encode("ascii")
    if kind == "raise":
        # A task the FC test handler (tests/support/fc_code/index.py) raises on.
        return pickle.dumps({u("action"): u("raise")}, protocol)
    raise SystemExit("unknown kind %r" % kind)


def drop_file(root, key, data):
    path = os.path.join(root, *key.split("/"))
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        os.makedirs(parent)
    # Written beside the store, then renamed in: a poll never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(root)))
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def main():
    spec = json.loads(sys.argv[1])
    mode = sys.argv[2]
    bucket = None
    s3 = None
    if mode == "--s3":
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=sys.argv[3],
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        bucket = sys.argv[4]
    for item in spec:
        data = payload(item)
        row = {
            "key": item["key"],
            "size": len(data),
            "md5": hashlib.md5(data).hexdigest(),
            "hex": binascii.hexlify(data).decode("ascii"),
        }
        if mode == "--local":
            drop_file(sys.argv[3], item["key"], data)
        elif mode == "--s3":
            answer = s3.put_object(Bucket=bucket, Key=item["key"], Body=data)
            row["etag"] = answer["ETag"].strip('"')
        elif mode != "--print":
            raise SystemExit("unknown mode %r" % mode)
        print(json.dumps(row, sort_keys=True))


if __name__ == "__main__":
    main()
