// pets console: a little plain JavaScript, loaded from /console/static (no inline script).
// 1. forms with data-confirm ask before they submit;
// 2. the "Update live" checkbox polls its data-live URL every 2 s and replaces the records.
"use strict";
document.addEventListener("submit", function (ev) {
  var msg = ev.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) { ev.preventDefault(); }
});
document.addEventListener("DOMContentLoaded", function () {
  var box = document.getElementById("live");
  var target = document.getElementById("live-target");
  if (!box || !target) { return; }
  var timer = null;
  function poll() {
    fetch(box.getAttribute("data-live"), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok || r.redirected) { throw new Error(String(r.status)); } return r.text(); })
      .then(function (html) { target.innerHTML = html; })
      .catch(function () { box.checked = false; stop(); });
  }
  function stop() { if (timer) { clearInterval(timer); timer = null; } }
  box.addEventListener("change", function () {
    stop();
    if (box.checked) { poll(); timer = setInterval(poll, 2000); }
  });
});
