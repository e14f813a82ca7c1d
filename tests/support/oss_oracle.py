#!/usr/bin/env python3
"""An OSS emulation on 127.0.0.1 that judges every request with Alibaba's own SDK signers.

OSS itself cannot be reached from the test machines, so this server stands in for it, strictly:

- Every signed request is re-signed from what arrived on the wire by the SDKs' own code,
  `alibabacloud_oss_v2.signer.SignerV4` (V4) and `oss2.Auth`/`oss2.StsAuth` (V1), with the time
  the request carries; a request whose Authorization differs is answered 403
  SignatureDoesNotMatch (and counted), as OSS would. Unknown key ids, a missing or wrong STS
  token, an expired key and a skewed clock are refused with OSS's codes.
- OSS semantics for what bucketq sends: `x-oss-forbid-overwrite` (409 FileAlreadyExists, ignored
  on a versioned bucket, as OSS does), `x-oss-copy-source-if-match` (412), 404 NoSuchKey with the
  error in `x-oss-err` for HEAD, 411 MissingContentLength for a PUT or POST without a length,
  501 NotImplemented for S3's `If-None-Match`, ListObjectsV2 paging with `encoding-type=url`,
  DeleteMultipleObjects with a required Content-MD5, GetBucketVersioning.
- Addressing as OSS's: virtual-hosted (`<bucket>.<host>`), path-style (`/<bucket>/<key>`, what
  the SDKs send to an IP endpoint) or a custom domain (`--cname HOST`).

Keys are taken from `--keys FILE`, a JSON list of {"id", "secret", "token"?, "expires"?
(unix seconds)}, read again on every request so a test can rotate them. `GET /_oracle/log`
(unsigned, outside any bucket) returns every request seen with its verdict as JSON;
`POST /_oracle/versioning?status=Enabled` switches the bucket's versioning;
`POST /_oracle/refuse-copies?status=403&code=AccessDenied` refuses every CopyObject (a claim)
with that answer until called without `status`.

Prints `listening <port>` on stdout once it accepts connections. With `--tls DIR` it serves
HTTPS with DIR/server.pem and DIR/server.key.
"""

import argparse
import base64
import datetime
import email.utils
import hashlib
import http.server
import json
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from xml.sax.saxutils import escape

import alibabacloud_oss_v2 as oss_v2
import oss2
from alibabacloud_oss_v2.signer.v4 import SignerV4
from alibabacloud_oss_v2.types import HttpRequest, SigningContext

SKEW_LIMIT = 15 * 60
STATE = threading.Lock()
V1_CLOCK = threading.Lock()


class Bucket:
    def __init__(self, name):
        self.name = name
        self.objects = {}  # key -> dict(body, etag, modified, meta, ctype)
        self.versioning = None


class Oracle:
    def __init__(self, args):
        self.args = args
        self.bucket = Bucket(args.bucket)
        self.log = []
        self.refuse_copies = None

    def keys(self):
        with open(self.args.keys) as f:
            return {k["id"]: k for k in json.load(f)}


def now_http():
    return email.utils.formatdate(usegmt=True)


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z")


def error_xml(code, message, extra=""):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
            '<RequestId>%s</RequestId><HostId>oracle</HostId>%s</Error>'
            % (code, escape(message), uuid.uuid4().hex[:24].upper(), extra)).encode()


class Refusal(Exception):
    def __init__(self, status, code, message, extra=""):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AliyunOSS"

    def log_message(self, fmt, *args):  # quiet: the log endpoint tells
        pass

    # -- plumbing ------------------------------------------------------------------------

    def do_GET(self):
        self.handle_any()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def read_body(self):
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        if length is None:
            return None
        return self.rfile.read(int(length))

    def reply(self, status, body=b"", headers=None, head_error=None):
        self.send_response(status)
        self.send_header("Date", now_http())
        self.send_header("x-oss-request-id", uuid.uuid4().hex[:24].upper())
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if head_error is not None:
            self.send_header("x-oss-err", base64.b64encode(head_error).decode())
        if self.command == "HEAD":
            length = (headers or {}).get("Content-Length")
            if length is None:
                self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        oracle = self.server.oracle
        target = urllib.parse.urlsplit(self.path)
        if target.path.startswith("/_oracle/"):
            return self.oracle_control(target)
        body = self.read_body()
        entry = {"method": self.command, "target": self.path, "host": self.headers.get("Host"),
                 "content_length": self.headers.get("Content-Length"),
                 "headers": {k.lower(): v for k, v in self.headers.items()}}
        try:
            bucket, key = self.address(target.path)
            entry["bucket"], entry["key"] = bucket, key
            params = urllib.parse.parse_qsl(target.query, keep_blank_values=True)
            entry["signature"] = self.verify(bucket, key, target.query, params)
            if bucket != oracle.bucket.name:
                raise Refusal(404, "NoSuchBucket", "The specified bucket does not exist.")
            if self.command in ("PUT", "POST") and body is None:
                raise Refusal(411, "MissingContentLength",
                              "The Content-Length header does not exist in the request.",
                              "<EC>0017-00000101</EC>")
            for header in ("If-None-Match", "If-Match"):
                if self.command == "PUT" and self.headers.get(header) is not None:
                    raise Refusal(501, "NotImplemented",
                                  "A header you provided implies functionality that is not implemented",
                                  "<Header>%s</Header>" % header)
            refuse = oracle.refuse_copies
            if refuse and self.command == "PUT" and self.headers.get("x-oss-copy-source"):
                raise Refusal(refuse[0], refuse[1], "refused by the test (/_oracle/refuse-copies)")
            with STATE:
                status, out, headers = self.operate(oracle.bucket, key, dict(params), body or b"")
            entry["status"] = status
            oracle.log.append(entry)
            self.reply(status, out, headers)
        except Refusal as r:
            entry["status"], entry["code"] = r.status, r.code
            oracle.log.append(entry)
            xml = error_xml(r.code, r.message, r.extra)
            if self.command == "HEAD":
                self.reply(r.status, head_error=xml)
            else:
                self.reply(r.status, xml, {"Content-Type": "application/xml"})

    def oracle_control(self, target):
        oracle = self.server.oracle
        body = self.read_body()
        if target.path == "/_oracle/log":
            out = json.dumps(oracle.log).encode()
            return self.reply(200, out, {"Content-Type": "application/json"})
        if target.path == "/_oracle/refuse-copies":
            # Refuse every CopyObject (a claim on OSS) with this status and code, or stop.
            q = dict(urllib.parse.parse_qsl(target.query))
            oracle.refuse_copies = (int(q["status"]), q["code"]) if "status" in q else None
            return self.reply(200)
        if target.path == "/_oracle/versioning":
            status = dict(urllib.parse.parse_qsl(target.query)).get("status")
            oracle.bucket.versioning = status
            return self.reply(200)
        del body
        self.reply(404)

    # -- addressing ----------------------------------------------------------------------

    def address(self, path):
        """(bucket, key or None) from Host and path, as OSS reads them."""
        args = self.server.oracle.args
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        raw = path[1:]
        if args.cname and host == args.cname:
            bucket, rest = args.bucket, raw
        elif args.virtual_host and host.endswith("." + args.virtual_host):
            bucket, rest = host[: -len(args.virtual_host) - 1], raw
        elif args.virtual_host and host == args.virtual_host:
            raise Refusal(403, "SecondLevelDomainForbidden",
                          "Please use virtual hosted style to access.")
        else:
            bucket, _, rest = raw.partition("/")
        key = urllib.parse.unquote(rest) if rest else None
        return bucket, key

    # -- signatures ----------------------------------------------------------------------

    def verify(self, bucket, key, raw_query, params):
        auth = self.headers.get("Authorization")
        if auth is None:
            raise Refusal(403, "AccessDenied", "You have no right to access this object.")
        if auth.startswith("OSS4-HMAC-SHA256 "):
            return self.verify_v4(auth, bucket, key, raw_query)
        if auth.startswith("OSS "):
            return self.verify_v1(auth, bucket, key, params)
        raise Refusal(400, "InvalidArgument", "Authorization header is invalid.")

    def credentials(self, key_id):
        known = self.server.oracle.keys().get(key_id)
        if known is None:
            raise Refusal(403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records.")
        if known.get("expires") is not None and time.time() > known["expires"]:
            raise Refusal(403, "SecurityTokenExpired", "The security token you provided has expired.")
        token = known.get("token")
        sent = self.headers.get("x-oss-security-token")
        if token is not None and sent != token:
            raise Refusal(403, "InvalidSecurityToken", "The security token you provided is invalid.")
        if token is None and sent is not None:
            raise Refusal(403, "InvalidSecurityToken", "This key takes no security token.")
        return known

    def check_skew(self, when):
        if abs(time.time() - when) > SKEW_LIMIT:
            raise Refusal(403, "RequestTimeTooSkewed",
                          "The difference between the request time and the current time is too large.")

    def wire_headers(self):
        return {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"}

    def verify_v4(self, auth, bucket, key, raw_query):
        fields = dict(part.strip().split("=", 1) for part in auth[len("OSS4-HMAC-SHA256 "):].split(","))
        key_id, date, region, product, _ = fields["Credential"].split("/")
        known = self.credentials(key_id)
        x_date = self.headers.get("x-oss-date")
        if x_date is None or not x_date.startswith(date):
            raise Refusal(403, "SignatureDoesNotMatch", "x-oss-date is missing or does not match the scope")
        if self.headers.get("x-oss-content-sha256") != "UNSIGNED-PAYLOAD":
            raise Refusal(403, "SignatureDoesNotMatch", "x-oss-content-sha256 must be UNSIGNED-PAYLOAD")
        signing_time = datetime.datetime.strptime(x_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        self.check_skew(signing_time.timestamp())
        if region != self.server.oracle.args.region or product != "oss":
            raise Refusal(403, "SignatureDoesNotMatch", "scope region %s is not the bucket's" % region)
        additional = fields.get("AdditionalHeaders")
        url = "http://%s%s" % (self.headers.get("Host"), self.path)
        request = HttpRequest(self.command, url, headers=self.wire_headers())
        ctx = SigningContext(
            product="oss", region=region, bucket=bucket, key=key, request=request,
            credentials=oss_v2.credentials.Credentials(known["id"], known["secret"], known.get("token")),
            signing_time=signing_time,
            additional_headers=set(additional.split(";")) if additional else None)
        SignerV4().sign(ctx)
        expected = request.headers["Authorization"]
        if expected != auth:
            raise Refusal(403, "SignatureDoesNotMatch",
                          "The request signature we calculated does not match the signature you provided.",
                          "<StringToSign>%s</StringToSign>" % escape(ctx.string_to_sign))
        return "v4"

    def verify_v1(self, auth, bucket, key, params):
        key_id, _, _ = auth[len("OSS "):].partition(":")
        known = self.credentials(key_id)
        date = self.headers.get("Date")
        if date is None:
            raise Refusal(403, "AccessDenied", "V1 requests need a Date header")
        self.check_skew(email.utils.parsedate_to_datetime(date).timestamp())
        request = oss2.http.Request(self.command, "http://%s%s" % (self.headers.get("Host"), self.path),
                                    params=dict(params), headers=self.wire_headers())
        if known.get("token"):
            signer = oss2.StsAuth(known["id"], known["secret"], known["token"])
        else:
            signer = oss2.Auth(known["id"], known["secret"])
        # oss2 stamps the current time; sign with the time the request carries instead.
        with V1_CLOCK:
            saved = oss2.utils.http_date
            oss2.utils.http_date = lambda *a: date
            try:
                signer._sign_request(request, bucket, key or "")
            finally:
                oss2.utils.http_date = saved
        if request.headers["authorization"] != auth:
            raise Refusal(403, "SignatureDoesNotMatch",
                          "The request signature we calculated does not match the signature you provided.")
        return "v1"

    # -- operations ----------------------------------------------------------------------

    def operate(self, b, key, params, body):
        if key is None:
            return self.bucket_op(b, params, body)
        h = self.headers
        if self.command in ("GET", "HEAD"):
            obj = b.objects.get(key)
            if obj is None:
                raise Refusal(404, "NoSuchKey", "The specified key does not exist.", "<EC>0026-00000001</EC>")
            headers = {"ETag": '"%s"' % obj["etag"], "Last-Modified": email.utils.formatdate(obj["modified"], usegmt=True),
                       "Content-Type": obj["ctype"] or "application/octet-stream",
                       "x-oss-object-type": "Normal"}
            for name, value in obj["meta"].items():
                headers["x-oss-meta-" + name] = value
            if self.command == "HEAD":
                headers["Content-Length"] = str(len(obj["body"]))
            return 200, obj["body"], headers
        if self.command == "DELETE":
            b.objects.pop(key, None)
            return 204, b"", {}
        if self.command == "PUT":
            forbid = h.get("x-oss-forbid-overwrite", "").lower() == "true" and b.versioning is None
            if forbid and key in b.objects:
                raise Refusal(409, "FileAlreadyExists", "The object you specified already exists and can not be overwritten.",
                              "<EC>0026-00000002</EC>")
            source = h.get("x-oss-copy-source")
            if source is None:
                md5 = h.get("Content-MD5")
                if md5 is not None and base64.b64encode(hashlib.md5(body).digest()).decode() != md5:
                    raise Refusal(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
                obj = self.new_object(body, h.get("Content-Type"), self.user_meta())
                b.objects[key] = obj
                return 200, b"", {"ETag": '"%s"' % obj["etag"]}
            return self.copy(b, key, source)
        raise Refusal(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")

    def user_meta(self):
        return {k.lower()[len("x-oss-meta-"):]: v for k, v in self.headers.items()
                if k.lower().startswith("x-oss-meta-")}

    @staticmethod
    def new_object(body, ctype, meta):
        return {"body": body, "etag": hashlib.md5(body).hexdigest().upper(), "modified": time.time(),
                "meta": meta, "ctype": ctype}

    def copy(self, b, key, source):
        src_bucket, _, src_key = urllib.parse.unquote(source).lstrip("/").partition("/")
        if src_bucket != b.name:
            raise Refusal(404, "NoSuchBucket", "The specified source bucket does not exist.")
        src = b.objects.get(src_key)
        if src is None:
            raise Refusal(404, "NoSuchKey", "The specified key does not exist.")
        cond = self.headers.get("x-oss-copy-source-if-match")
        if cond is not None and cond.strip('"').upper() != src["etag"]:
            raise Refusal(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold.")
        replace = self.headers.get("x-oss-metadata-directive", "COPY").upper() == "REPLACE"
        if replace:
            obj = self.new_object(src["body"], self.headers.get("Content-Type"), self.user_meta())
        else:
            obj = self.new_object(src["body"], src["ctype"], dict(src["meta"]))
        b.objects[key] = obj
        out = ('<?xml version="1.0" encoding="UTF-8"?>\n<CopyObjectResult><ETag>"%s"</ETag>'
               '<LastModified>%s</LastModified></CopyObjectResult>' % (obj["etag"], iso(obj["modified"])))
        return 200, out.encode(), {"Content-Type": "application/xml", "ETag": '"%s"' % obj["etag"]}

    def bucket_op(self, b, params, body):
        if self.command == "GET" and "versioning" in params:
            status = "<Status>%s</Status>" % b.versioning if b.versioning else ""
            out = '<?xml version="1.0" encoding="UTF-8"?>\n<VersioningConfiguration>%s</VersioningConfiguration>' % status
            return 200, out.encode(), {"Content-Type": "application/xml"}
        if self.command == "GET" and params.get("list-type") == "2":
            return self.list_v2(b, params)
        if self.command == "POST" and "delete" in params:
            md5 = self.headers.get("Content-MD5")
            if md5 is None:
                raise Refusal(400, "MissingArgument", "Missing Some Required Arguments.", "<ArgumentName>Content-MD5</ArgumentName>")
            if base64.b64encode(hashlib.md5(body).digest()).decode() != md5:
                raise Refusal(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
            return self.delete_many(b, body)
        if self.command == "GET":
            raise Refusal(400, "InvalidArgument", "only ListObjectsV2 (list-type=2) is emulated")
        raise Refusal(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")

    def list_v2(self, b, params):
        prefix = params.get("prefix", "")
        max_keys = int(params.get("max-keys", "100"))
        if not 0 < max_keys <= 1000:
            raise Refusal(400, "InvalidArgument", "max-keys must be 1..1000")
        url = params.get("encoding-type") == "url"
        after = params.get("start-after", "")
        token = params.get("continuation-token")
        if token:
            after = base64.b64decode(token).decode()
        keys = sorted(k for k in b.objects if k.startswith(prefix) and k > after)
        page, rest = keys[:max_keys], keys[max_keys:]
        enc = (lambda s: urllib.parse.quote(s, safe="")) if url else escape
        parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult><Name>%s</Name><Prefix>%s</Prefix>'
                 '<MaxKeys>%d</MaxKeys>' % (b.name, enc(prefix), max_keys)]
        if url:
            parts.append("<EncodingType>url</EncodingType>")
        parts.append("<IsTruncated>%s</IsTruncated>" % ("true" if rest else "false"))
        if rest:
            parts.append("<NextContinuationToken>%s</NextContinuationToken>" % base64.b64encode(page[-1].encode()).decode())
        parts.append("<KeyCount>%d</KeyCount>" % len(page))
        for k in page:
            o = b.objects[k]
            parts.append('<Contents><Key>%s</Key><LastModified>%s</LastModified><ETag>"%s"</ETag><Type>Normal</Type>'
                         '<Size>%d</Size><StorageClass>Standard</StorageClass></Contents>'
                         % (enc(k), iso(o["modified"]), o["etag"], len(o["body"])))
        parts.append("</ListBucketResult>")
        return 200, "".join(parts).encode(), {"Content-Type": "application/xml"}

    def delete_many(self, b, body):
        import xml.etree.ElementTree as ET
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            raise Refusal(400, "MalformedXML", "The XML you provided was not well-formed.")
        quiet = (root.findtext("Quiet") or "").lower() == "true"
        deleted = []
        for obj in root.findall("Object"):
            k = obj.findtext("Key")
            b.objects.pop(k, None)
            deleted.append(k)
        parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult>']
        if not quiet:
            parts.extend("<Deleted><Key>%s</Key></Deleted>" % escape(k) for k in deleted)
        parts.append("</DeleteResult>")
        return 200, "".join(parts).encode(), {"Content-Type": "application/xml"}


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--bucket", required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--keys", required=True, help="JSON file of accepted keys, re-read per request")
    p.add_argument("--virtual-host", help="the endpoint host under which <bucket>.<host> is virtual-hosted")
    p.add_argument("--cname", help="a host name bound to the bucket")
    p.add_argument("--tls", help="directory holding server.pem and server.key")
    args = p.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    server.oracle = Oracle(args)
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls + "/server.pem", args.tls + "/server.key")
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("listening %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
