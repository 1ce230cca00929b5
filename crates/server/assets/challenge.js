// The hosted challenge page's passkey button: asks the browser for an
// assertion with the server's request options and posts it back. Code
// factors work without this script (a plain form).
(function () {
  "use strict";
  var box = document.getElementById("passkey");
  if (!box) return;
  var button = document.getElementById("use-passkey");
  var error = document.getElementById("error");
  button.addEventListener("click", async function () {
    error.textContent = "";
    button.disabled = true;
    try {
      var options = PublicKeyCredential.parseRequestOptionsFromJSON(JSON.parse(box.dataset.options));
      var credential = await navigator.credentials.get({ publicKey: options });
      var reply = await fetch(box.dataset.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/json", "x-csrf-token": box.dataset.csrf },
        body: JSON.stringify({ credential: credential.toJSON() }),
      });
      var body = await reply.json();
      if (body.redirect) {
        window.location.assign(body.redirect);
        return;
      }
      // Errors come in the API's shape; a passkey that was not accepted
      // says so in `message`.
      error.textContent = (body.error && body.error.message) || body.message || "That did not work. Try again.";
    } catch (e) {
      error.textContent = "Your passkey could not be used. Try again.";
    }
    button.disabled = false;
    error.focus();
  });
})();
