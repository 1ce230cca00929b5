// The help-desk console: starts a caller verification for a record, then
// shows its status live (polling every second) with a countdown of the
// time allowed, and the record's transaction log below.
(function () {
  "use strict";
  var root = document.getElementById("console");
  if (!root) return;
  var csrf = root.dataset.csrf;
  var form = document.getElementById("authenticate");
  var status = document.getElementById("status");
  var countdown = document.getElementById("countdown");
  var error = document.getElementById("error");
  var log = document.getElementById("transactions");
  var timer = null;

  function call(method, url, body) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: body ? JSON.stringify(body) : undefined,
    }).then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); });
  }

  function showLog(record) {
    call("GET", "/console/helpdesk/records/" + encodeURIComponent(record)).then(function (r) {
      if (!r.ok) return;
      log.textContent = "";
      r.body.transactions.forEach(function (t) {
        var row = document.createElement("tr");
        [t.created_at, t.status, t.channel, t.to, t.agent_id || ""].forEach(function (v) {
          var cell = document.createElement("td");
          cell.textContent = v;
          row.appendChild(cell);
        });
        log.appendChild(row);
      });
    });
  }

  function watch(id, record) {
    clearInterval(timer);
    timer = setInterval(function () {
      call("GET", "/console/helpdesk/verifications/" + id).then(function (r) {
        if (!r.ok) return;
        status.textContent = r.body.status;
        status.dataset.status = r.body.status;
        var left = Math.max(0, Math.round((Date.parse(r.body.expires_at) - Date.now()) / 1000));
        countdown.textContent = r.body.status === "pending" ? left + " s left" : "";
        if (r.body.status !== "pending") {
          clearInterval(timer);
          showLog(record);
        }
      });
    }, 1000);
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    error.textContent = "";
    var record = document.getElementById("record_id").value.trim();
    var contact = document.getElementById("contact").value.trim();
    var body = { record_id: record };
    if (contact.indexOf("@") >= 0) { body.email = contact; body.channel = "email"; } else { body.phone = contact; }
    call("POST", "/console/helpdesk/verifications", body).then(function (r) {
      if (!r.ok) {
        error.textContent = (r.body.error && r.body.error.message) || "Could not start the verification.";
        return;
      }
      status.textContent = r.body.status;
      status.dataset.status = r.body.status;
      showLog(record);
      watch(r.body.id, record);
    });
  });
})();
