"""A stand-in for Alibaba's `oss2` SDK with the same names, for the FC shim test: every call
that would reach OSS fails loudly, so the test proves the shim served the task object."""


class Auth(object):
    def __init__(self, access_key_id, access_key_secret):
        self.id = access_key_id


class StsAuth(object):
    def __init__(self, access_key_id, access_key_secret, security_token):
        self.id = access_key_id


class Bucket(object):
    def __init__(self, auth, endpoint, bucket_name):
        self.auth = auth
        self.endpoint = endpoint
        self.bucket_name = bucket_name

    def get_object(self, key, *args, **kwargs):
        raise RuntimeError("test oss2 stand-in: no network (get_object %s)" % key)

    def delete_object(self, key, *args, **kwargs):
        raise RuntimeError("test oss2 stand-in: no network (delete_object %s)" % key)
