// The request page's "who else is on it" notice (issue 17), refreshed without a reload.
// Progressive enhancement: without this script the page shows the notice as it was loaded
// and every form works the same. Every few seconds (and at once when a decision form is first
// typed into) it posts a heartbeat with the page's CSRF token — "viewing", or "deciding" once
// a decision form has been touched — and puts the HTML it gets back into the notice.
(function () {
  "use strict";
  var box = document.getElementById("presence");
  var token = document.querySelector("input[name=_csrf]");
  if (!box || !token || !window.fetch) {
    return;
  }
  var url = box.getAttribute("data-url");
  var every = Number(box.getAttribute("data-every")) || 10000;
  var deciding = false;
  var shown = null;
  function beat() {
    var body = new URLSearchParams();
    body.set("_csrf", token.value);
    body.set("state", deciding ? "deciding" : "viewing");
    fetch(url, { method: "POST", body: body, credentials: "same-origin", redirect: "error" })
      .then(function (r) {
        if (!r.ok) {
          throw new Error("presence: " + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        // Only a change is written: the notice is a live region, read out when it changes.
        if (html !== shown) {
          shown = html;
          box.innerHTML = html;
        }
      })
      .catch(function () {
        // Signed out, or the server is away: the notice stays as it was.
      });
  }
  document.querySelectorAll("form[data-decision]").forEach(function (form) {
    form.addEventListener("input", function () {
      if (!deciding) {
        deciding = true;
        beat();
      }
    });
  });
  beat();
  window.setInterval(beat, every);
})();
