// Drives vouchsafe's Twilio-compatible surface with the official `twilio`
// npm package, its Verify domain pointed at the test server.
//
//     node twilio_driver.js BASE_URL ACCOUNT_SID SECRET
//
// Reads one JSON command per line on stdin (the same commands as
// twilio_driver.py), answers one JSON line: {"ok": fields} or
// {"error": {"status", "code", "message"}}.

const readline = require("readline");
const twilio = require("twilio");

const [base, accountSid, secret] = process.argv.slice(2);
const client = twilio(accountSid, secret);
client.verify.baseUrl = base;
const verify = client.verify.v2;

const serviceFields = (s) => ({
  sid: s.sid, account_sid: s.accountSid, friendly_name: s.friendlyName, code_length: s.codeLength, url: s.url,
});
const verificationFields = (v) => ({
  sid: v.sid, service_sid: v.serviceSid, account_sid: v.accountSid, to: v.to, channel: v.channel,
  status: v.status, valid: v.valid, url: v.url, send_code_attempts: v.sendCodeAttempts,
});

async function run(cmd) {
  switch (cmd.op) {
    case "service_create": {
      const params = { friendlyName: cmd.friendly_name };
      if (cmd.code_length) params.codeLength = cmd.code_length;
      return serviceFields(await verify.services.create(params));
    }
    case "service_list":
      return (await verify.services.list({ pageSize: cmd.page_size || 50 })).map((s) => s.sid);
    case "service_fetch":
      return serviceFields(await verify.services(cmd.sid).fetch());
    case "service_delete":
      return await verify.services(cmd.sid).remove();
  }
  const service = verify.services(cmd.service);
  switch (cmd.op) {
    case "verification_create": {
      const params = { to: cmd.to, channel: cmd.channel };
      if (cmd.locale) params.locale = cmd.locale;
      return verificationFields(await service.verifications.create(params));
    }
    case "verification_fetch":
      return verificationFields(await service.verifications(cmd.sid).fetch());
    case "verification_update":
      return verificationFields(await service.verifications(cmd.sid).update({ status: cmd.status }));
    case "check": {
      const params = { code: cmd.code };
      if (cmd.to) params.to = cmd.to;
      if (cmd.verification_sid) params.verificationSid = cmd.verification_sid;
      const c = await service.verificationChecks.create(params);
      return { sid: c.sid, status: c.status, valid: c.valid, to: c.to, channel: c.channel };
    }
  }
  throw new Error(`unknown op ${cmd.op}`);
}

const lines = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on("line", (line) => {
  queue = queue.then(async () => {
    let reply;
    try {
      reply = { ok: await run(JSON.parse(line)) };
    } catch (e) {
      if (e.status === undefined) throw e;
      reply = { error: { status: e.status, code: e.code, message: e.message } };
    }
    process.stdout.write(JSON.stringify(reply) + "\n");
  });
});
