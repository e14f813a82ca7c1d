# -*- coding: utf-8 -*-
"""An FC handler written the way the original mail function was: it reads the task object with
oss2, unpickles it and deletes it. It records what it saw in $FC_TEST_OUT instead of mailing."""
import json
import os
import pickle

import oss2

bucket = None
init_calls = []


def init(context):
    global bucket
    creds = context.credentials
    auth = oss2.StsAuth(creds.access_key_id, creds.access_key_secret, creds.security_token)
    bucket = oss2.Bucket(auth, "https://oss-cn-hongkong.aliyuncs.com", os.environ["OSS_BUCKET"])
    init_calls.append(context.request_id)


def handler(event, context):
    evt = json.loads(event)
    key = evt["events"][0]["oss"]["object"]["key"]
    data = pickle.loads(bucket.get_object(key).read())
    bucket.delete_object(key)
    with open(os.environ["FC_TEST_OUT"], "w") as f:
        json.dump(
            {
                "event_type": type(event).__name__,
                "event": evt,
                "data": data,
                "init_calls": len(init_calls),
                "key_id": context.credentials.access_key_id,
                "request_id": context.request_id,
            },
            f,
        )
    if data.get("action") == "retry":
        raise SystemExit(75)
    if data.get("action") == "raise":
        raise ValueError("the handler raised on purpose")
    return "sent"
