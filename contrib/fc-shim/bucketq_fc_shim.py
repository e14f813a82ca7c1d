#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""Run an unmodified Alibaba Function Compute Python handler behind bucketq's `exec` handler.

    [[queue]]
    name = "mail"
    prefix = "mail/"
    handler = { type = "exec", event = "fc", region = "cn-hongkong", account_id = "1234",
                command = ["python3", "/opt/bucketq/bucketq_fc_shim.py",
                           "--code-dir", "/opt/fc-code", "--initializer", "index.init",
                           "index.handler"],
                env = { ALIBABA_CLOUD_ACCESS_KEY_ID = "...", ALIBABA_CLOUD_ACCESS_KEY_SECRET = "..." } }

bucketq writes the FC OSS trigger event on stdin. This shim imports the handler module, calls the
initializer once (FC calls it once per instance; here every task is a fresh process, so once per
task), then `handler(event, context)` with `event` as bytes, exactly as FC passes it.

Exit status: 0 when the handler returns, 1 when it raises (bucketq retries until the task's
attempts are spent, then moves it to failed/), 75 to ask for a retry explicitly
(`raise SystemExit(75)`). The traceback goes to stderr, which bucketq logs.

The event names the task's key, but bucketq has already claimed the object (renamed it to
`.lock`), so a handler that reads it back with `oss2` would find nothing. When `oss2` is
installed, the shim answers `Bucket.get_object(<that key>)` from the payload file bucketq passes
(`BUCKETQ_PAYLOAD_FILE`), and makes `Bucket.delete_object(<that key>)` a no-op, since bucketq
deletes the task itself once the handler succeeds. Every other oss2 call goes to OSS as before.

Works with Python 2.7 and 3.x, like the FC runtimes it stands in for.
"""
from __future__ import print_function

import argparse
import importlib
import io
import json
import os
import sys
import traceback

EXIT_RETRY = 75


class Credentials(object):
    """`context.credentials`: FC's temporary keys; here whatever the environment provides."""

    def __init__(self):
        env = os.environ.get
        self.access_key_id = env("ALIBABA_CLOUD_ACCESS_KEY_ID") or env("OSS_KEYID")
        self.access_key_secret = env("ALIBABA_CLOUD_ACCESS_KEY_SECRET") or env("OSS_SECRET")
        self.security_token = env("ALIBABA_CLOUD_SECURITY_TOKEN")

    # Older runtimes expose camelCase names too.
    @property
    def accessKeyId(self):  # noqa: N802
        return self.access_key_id

    @property
    def accessKeySecret(self):  # noqa: N802
        return self.access_key_secret

    @property
    def securityToken(self):  # noqa: N802
        return self.security_token


class Attrs(object):
    def __init__(self, **kw):
        self.__dict__.update(kw)


class Context(object):
    """The subset of FC's `context` that handlers use."""

    def __init__(self, event, handler_spec, initializer_spec):
        record = event["events"][0]
        self.request_id = record.get("responseElements", {}).get("requestId", "")
        self.region = record.get("region", "")
        self.account_id = record.get("userIdentity", {}).get("principalId", "")
        self.credentials = Credentials()
        self.function = Attrs(
            name=os.environ.get("BUCKETQ_QUEUE", ""),
            handler=handler_spec,
            memory=0,
            timeout=0,
            initializer=initializer_spec,
        )
        self.service = Attrs(
            name="bucketq", log_project="", log_store="", qualifier="", version_id=""
        )
        self.attempt = int(os.environ.get("BUCKETQ_ATTEMPT", "1"))


def load(spec, code_dir):
    """`index.handler` -> the function `handler` of module `index` (FC's handler syntax)."""
    module_name, _, func_name = spec.rpartition(".")
    if not module_name:
        raise SystemExit("handler %r must look like module.function" % spec)
    if code_dir and code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    return getattr(importlib.import_module(module_name), func_name)


def serve_claimed_object(bucket_name, key, payload_path):
    """Answer oss2 reads of the claimed task object from the payload file (see module doc)."""
    try:
        import oss2
    except ImportError:
        return

    def is_task(bucket, wanted):
        name = getattr(bucket, "bucket_name", bucket_name)
        return wanted == key and name == bucket_name

    real_get = oss2.Bucket.get_object
    real_delete = oss2.Bucket.delete_object

    def get_object(self, wanted, *args, **kwargs):
        if not is_task(self, wanted):
            return real_get(self, wanted, *args, **kwargs)
        with open(payload_path, "rb") as f:
            data = f.read()
        stream = io.BytesIO(data)
        stream.content_length = len(data)
        stream.headers = {"Content-Length": str(len(data))}
        stream.key = wanted
        return stream

    def delete_object(self, wanted, *args, **kwargs):
        if not is_task(self, wanted):
            return real_delete(self, wanted, *args, **kwargs)
        return None

    oss2.Bucket.get_object = get_object
    oss2.Bucket.delete_object = delete_object


def read_stdin():
    stream = getattr(sys.stdin, "buffer", sys.stdin)
    return stream.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("handler", help="module.function, as in the FC function's handler setting")
    ap.add_argument("--initializer", help="module.function called once before the handler")
    ap.add_argument("--code-dir", help="directory holding the function's code")
    args = ap.parse_args()

    # The function's code (and any vendored oss2) must be importable before oss2 is patched.
    if args.code_dir and args.code_dir not in sys.path:
        sys.path.insert(0, args.code_dir)
    raw = read_stdin()
    event = json.loads(raw.decode("utf-8"))
    record = event["events"][0]
    payload_path = os.environ.get("BUCKETQ_PAYLOAD_FILE")
    if payload_path:
        serve_claimed_object(
            record["oss"]["bucket"]["name"], record["oss"]["object"]["key"], payload_path
        )

    context = Context(event, args.handler, args.initializer)
    try:
        handler = load(args.handler, args.code_dir)
        if args.initializer:
            load(args.initializer, args.code_dir)(context)
        result = handler(raw, context)
    except SystemExit:
        raise
    except Exception:  # noqa: BLE001 - any handler error is a failed attempt
        traceback.print_exc()
        return 1
    if result is not None:
        if isinstance(result, bytes):
            result = result.decode("utf-8", "replace")
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
