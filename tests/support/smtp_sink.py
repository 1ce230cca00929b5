"""A real SMTP server on loopback for the tests (PyPI `aiosmtpd`): accepts
mail, optionally requires AUTH LOGIN/PLAIN with the given user and password
(over plain TCP, as a relay on a trusted network would), and prints each
message as one JSON line: {"mail_from", "rcpt_tos", "data", "auth_user"}.

    python3 smtp_sink.py [USER PASSWORD]    # first line printed: the port
"""

import json
import socket
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER = sys.argv[1] if len(sys.argv) > 2 else None
PASSWORD = sys.argv[2] if len(sys.argv) > 2 else None


class Handler:
    async def handle_DATA(self, server, session, envelope):
        print(json.dumps({
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
            "auth_user": getattr(session, "auth_data", None) and session.auth_data.login.decode(),
        }), flush=True)
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == USER \
        and auth_data.password.decode() == PASSWORD
    return AuthResult(success=ok, auth_data=auth_data)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


port = free_port()
kwargs = {}
if USER is not None:
    kwargs = {"authenticator": authenticator, "auth_required": True, "auth_require_tls": False}
controller = Controller(Handler(), hostname="127.0.0.1", port=port, **kwargs)
controller.start()
print(port, flush=True)
try:
    while True:
        time.sleep(3600)
except KeyboardInterrupt:
    controller.stop()
