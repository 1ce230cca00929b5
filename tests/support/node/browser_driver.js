// Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, one
// JSON command per line on stdin, one JSON answer per line on stdout, for
// the page tests. A context with JavaScript gets Chrome's virtual WebAuthn
// authenticator (CTAP2, internal, resident keys, user verification).
//
//     node browser_driver.js

const readline = require("readline");
const { chromium } = require("playwright-core");

let browser;
let page;

const ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

async function text(selector) {
  const el = await page.$(selector);
  return el ? (await el.textContent()).trim() : null;
}

async function run(cmd) {
  switch (cmd.op) {
    case "start": {
      browser = browser || (await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ARGS }));
      const context = await browser.newContext({ javaScriptEnabled: cmd.javascript !== false, viewport: { width: 390, height: 844 } });
      page = await context.newPage();
      if (cmd.javascript !== false) {
        const cdp = await context.newCDPSession(page);
        await cdp.send("WebAuthn.enable");
        await cdp.send("WebAuthn.addVirtualAuthenticator", {
          options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true },
        });
      }
      return {};
    }
    case "goto": {
      const response = await page.goto(cmd.url);
      return { status: response.status(), url: page.url(), headers: response.headers(), title: await page.title() };
    }
    case "load_watching_errors": {
      // Every console error while the page loads and renders `selector`:
      // a Content-Security-Policy refusal shows up here.
      const errors = [];
      page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
      page.on("pageerror", (e) => errors.push(String(e)));
      const response = await page.goto(cmd.url);
      await page.waitForSelector(cmd.selector, { timeout: cmd.timeout_ms || 15000 });
      await page.waitForTimeout(300);
      return { status: response.status(), text: await text(cmd.selector), errors };
    }
    case "create_passkey":
      return await page.evaluate(async (options) => {
        const credential = await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) });
        return credential.toJSON();
      }, cmd.options);
    case "inspect":
      return {
        label: await text("label[for=code]"),
        focused: await page.evaluate(() => document.activeElement && document.activeElement.id),
        described_by: await page.getAttribute("#code", "aria-describedby").catch(() => null),
        error: await text("#error"),
        heading: await text("h2"),
        brand: await text("h1"),
        passkey_button: await text("#use-passkey"),
      };
    case "submit_code": {
      await page.fill("#code", cmd.code);
      const [response] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
      return { status: response ? response.status() : null, url: page.url(), error: await text("#error"), heading: await text("h2") };
    }
    case "fill":
      await page.fill(cmd.selector, cmd.value);
      return {};
    case "click":
      await page.click(cmd.selector);
      return {};
    case "click_and_wait": {
      await Promise.all([page.waitForNavigation(), page.click(cmd.selector)]);
      return { url: page.url(), heading: await text("h2") };
    }
    case "wait_for_text": {
      await page.waitForFunction(
        ([selector, wanted]) => {
          const el = document.querySelector(selector);
          return el && el.textContent.includes(wanted);
        },
        [cmd.selector, cmd.text],
        { timeout: cmd.timeout_ms || 10000 },
      );
      return { text: await text(cmd.selector), url: page.url() };
    }
    case "text":
      return { text: await text(cmd.selector) };
    case "click_passkey": {
      await page.click("#use-passkey");
      await page.waitForURL((u) => !u.pathname.startsWith("/challenge/"), { timeout: 15000 }).catch(() => {});
      return { url: page.url(), error: await text("#error") };
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
      reply = { error: String(e && e.stack ? e.stack : e) };
    }
    process.stdout.write(JSON.stringify(reply) + "\n");
  });
});
lines.on("close", async () => {
  await queue;
  if (browser) await browser.close();
});
