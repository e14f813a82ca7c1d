#!/usr/bin/env python3
"""Sign requests with Alibaba's own SDK signers, for the differential test of bucketq's.

Reads JSON lines {"version": "v4"|"v1", "method", "bucket", "key" (or null), "raw_query" (as
bucketq puts it on the wire), "query" ([[name, value]] decoded), "headers" {name: value},
"time" (unix seconds), "id", "secret", "token" (or null), "region"} and prints one line per
request: the Authorization header the SDK computes (V4: alibabacloud_oss_v2.signer.SignerV4;
V1: oss2.Auth / oss2.StsAuth).
"""
import datetime
import json
import sys

import alibabacloud_oss_v2 as oss_v2
import oss2
from alibabacloud_oss_v2.signer.v4 import SignerV4
from alibabacloud_oss_v2.types import HttpRequest, SigningContext


def v4(r):
    url = "http://host/path" + ("?" + r["raw_query"] if r["raw_query"] else "")
    req = HttpRequest(r["method"], url, headers=dict(r["headers"]))
    ctx = SigningContext(
        product="oss", region=r["region"], bucket=r["bucket"], key=r["key"], request=req,
        credentials=oss_v2.credentials.Credentials(r["id"], r["secret"], r["token"]),
        signing_time=datetime.datetime.fromtimestamp(r["time"], datetime.timezone.utc))
    SignerV4().sign(ctx)
    return req.headers["Authorization"]


def v1(r):
    date = oss2.utils.http_date(r["time"])
    req = oss2.http.Request(r["method"], "http://host/", params=dict(r["query"]), headers=dict(r["headers"]))
    auth = oss2.StsAuth(r["id"], r["secret"], r["token"]) if r["token"] else oss2.Auth(r["id"], r["secret"])
    saved = oss2.utils.http_date
    oss2.utils.http_date = lambda *a: date
    try:
        auth._sign_request(req, r["bucket"], r["key"] or "")
    finally:
        oss2.utils.http_date = saved
    return req.headers["authorization"]


for line in sys.stdin:
    r = json.loads(line)
    print(v4(r) if r["version"] == "v4" else v1(r), flush=False)
