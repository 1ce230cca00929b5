"""Drives vouchsafe's Twilio-compatible surface with the official `twilio`
Python package (PyPI), its Verify domain pointed at the test server.

    python3 twilio_driver.py BASE_URL ACCOUNT_SID SECRET

Reads one JSON command per line on stdin, answers one JSON line on stdout:
the resource's fields as the SDK parsed them, or
{"error": {"status", "code", "message"}} for a TwilioRestException.
"""

import json
import sys

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

base, account_sid, secret = sys.argv[1:4]
client = Client(account_sid, secret)
client.verify.base_url = base
verify = client.verify.v2


def service_fields(s):
    return {"sid": s.sid, "account_sid": s.account_sid, "friendly_name": s.friendly_name,
            "code_length": s.code_length, "url": s.url, "date_created": str(s.date_created)}


def verification_fields(v):
    return {"sid": v.sid, "service_sid": v.service_sid, "account_sid": v.account_sid, "to": v.to,
            "channel": v.channel, "status": v.status, "valid": v.valid, "url": v.url,
            "send_code_attempts": v.send_code_attempts, "date_created": str(v.date_created)}


def run(cmd):
    op = cmd["op"]
    if op == "service_create":
        kwargs = {"friendly_name": cmd["friendly_name"]}
        if "code_length" in cmd:
            kwargs["code_length"] = cmd["code_length"]
        return service_fields(verify.services.create(**kwargs))
    if op == "service_list":
        return [s.sid for s in verify.services.list(page_size=cmd.get("page_size", 50))]
    if op == "service_fetch":
        return service_fields(verify.services(cmd["sid"]).fetch())
    if op == "service_update":
        return service_fields(verify.services(cmd["sid"]).update(friendly_name=cmd["friendly_name"]))
    if op == "service_delete":
        return verify.services(cmd["sid"]).delete()
    service = verify.services(cmd["service"])
    if op == "verification_create":
        kwargs = {"to": cmd["to"], "channel": cmd["channel"]}
        if "locale" in cmd:
            kwargs["locale"] = cmd["locale"]
        return verification_fields(service.verifications.create(**kwargs))
    if op == "verification_fetch":
        return verification_fields(service.verifications(cmd["sid"]).fetch())
    if op == "verification_update":
        return verification_fields(service.verifications(cmd["sid"]).update(status=cmd["status"]))
    if op == "check":
        kwargs = {"code": cmd["code"]}
        for key in ("to", "verification_sid"):
            if key in cmd:
                kwargs[key] = cmd[key]
        c = service.verification_checks.create(**kwargs)
        return {"sid": c.sid, "status": c.status, "valid": c.valid, "to": c.to, "channel": c.channel}
    raise ValueError(f"unknown op {op}")


for line in sys.stdin:
    try:
        result = {"ok": run(json.loads(line))}
    except TwilioRestException as e:
        result = {"error": {"status": e.status, "code": e.code, "message": e.msg}}
    print(json.dumps(result, default=str), flush=True)
