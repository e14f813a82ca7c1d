"""A real SMTP server for bucketq's mail tests (aiosmtpd), on 127.0.0.1.

Prints "PORT <n>" once it listens, then records every accepted message as a JSON file in
--dir: the envelope, whether TLS and AUTH were in force, which connection carried it, and the
message as Python's own `email` package decodes it (subject, addresses, HTML and plain bodies),
so the Rust test checks what a mail client would show.

--script "451,250" answers the end of DATA with those codes in turn (then 250 for ever).
--starttls CERT KEY offers STARTTLS and requires it; --implicit-tls CERT KEY wraps the socket.
--auth USER:PASSWORD requires AUTH (PLAIN or LOGIN) with that login.
"""
import argparse
import asyncio
import email
import email.policy
import itertools
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

REPLIES = {
    250: "250 2.0.0 OK queued",
    421: "421 4.3.2 Service shutting down",
    451: "451 4.3.0 Temporary failure, try again later",
    550: "550 5.1.1 Mailbox unavailable",
    554: "554 5.7.1 Rejected by policy",
}


class Recorder:
    def __init__(self, directory, script):
        self.directory = directory
        self.script = list(script)
        self.count = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        if self.script:
            code = self.script.pop(0)
            if code != 250:
                return REPLIES[code]
        n = next(self.count)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        html = msg.get_body(preferencelist=("html",))
        plain = msg.get_body(preferencelist=("plain",))
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "login": login,
            "connection": server.connection_id,
            "subject": str(msg["subject"]),
            "from": str(msg["from"]),
            "to": str(msg["to"]) if msg["to"] else None,
            "cc": str(msg["cc"]) if msg["cc"] else None,
            "bcc_header": msg["bcc"] is not None,
            "reply_to": str(msg["reply-to"]) if msg["reply-to"] else None,
            "message_id": str(msg["message-id"]),
            "content_type": msg.get_content_type(),
            "html": html.get_content() if html is not None else None,
            "text": plain.get_content() if plain is not None else None,
        }
        path = os.path.join(self.directory, "%04d.json" % n)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return REPLIES[250]


class CountingSMTP(SMTP):
    connections = itertools.count(1)

    def connection_made(self, transport):
        self.connection_id = next(CountingSMTP.connections)
        super().connection_made(transport)


def tls_context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--script", default="")
    ap.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--implicit-tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--auth")
    args = ap.parse_args()
    script = [int(c) for c in args.script.split(",") if c]
    recorder = Recorder(args.dir, script)

    kwargs = dict(hostname="localhost", enable_SMTPUTF8=True, decode_data=False)
    if args.starttls:
        kwargs.update(tls_context=tls_context(*args.starttls), require_starttls=True)
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

        kwargs.update(
            authenticator=authenticator,
            auth_required=True,
            # Implicit TLS encrypts below aiosmtpd; it only sees STARTTLS as "TLS".
            auth_require_tls=not args.implicit_tls,
        )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server_ssl = tls_context(*args.implicit_tls) if args.implicit_tls else None
    server = loop.run_until_complete(
        loop.create_server(
            lambda: CountingSMTP(recorder, loop=loop, **kwargs),
            host="127.0.0.1",
            port=0,
            ssl=server_ssl,
        )
    )
    port = server.sockets[0].getsockname()[1]
    print("PORT %d" % port, flush=True)
    loop.run_forever()


if __name__ == "__main__":
    sys.exit(main())
