// The citizen page's only script: refresh the ride QR before it expires, keep a submitted form
// from being sent twice by impatient clicks (the server's idempotency key is what guarantees
// one order), and follow a top-up order until it is credited.
(function () {
  "use strict";

  var qr = document.getElementById("qr");
  if (qr) {
    var seconds = parseInt(qr.getAttribute("data-refresh"), 10) || 30;
    setInterval(function () {
      var next = new Image();
      next.onload = function () { qr.src = next.src; qr.setAttribute("data-loaded", String(Date.now())); };
      next.onerror = function () {
        fetch("/web/status", { credentials: "same-origin" }).then(function (r) {
          if (r.status === 401) { window.location.assign("/web/login?return_to=" + encodeURIComponent("/web/")); }
        });
      };
      next.src = "/web/qr.svg?t=" + Date.now();
    }, seconds * 1000);
  }

  var topup = document.getElementById("topup-form");
  if (topup) {
    topup.addEventListener("submit", function () {
      var button = document.getElementById("topup-submit");
      setTimeout(function () { if (button) { button.disabled = true; } }, 0);
    });
  }

  var order = document.getElementById("order");
  if (order) {
    var url = order.getAttribute("data-status-url");
    var done = { credited: 1, closed: 1, failed: 1, refunded: 1 };
    var poll = function () {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          if (r.status === 401) {
            window.location.assign("/web/login?return_to=" + encodeURIComponent(window.location.pathname));
            return null;
          }
          return r.json();
        })
        .then(function (data) {
          if (!data || !data.state) { setTimeout(poll, 1500); return; }
          document.getElementById("order-state").textContent = data.state_text;
          order.setAttribute("data-state", data.state);
          if (data.state === "credited") {
            document.getElementById("order-waiting").hidden = true;
            var yuan = data.balance === null || data.balance === undefined ? "—" : "¥" + (data.balance / 100).toFixed(2);
            document.getElementById("new-balance").textContent = yuan;
            document.getElementById("order-credited").hidden = false;
            var simulate = document.getElementById("simulate-pay");
            if (simulate) { simulate.hidden = true; }
          } else if (!done[data.state]) {
            setTimeout(poll, 1000);
          }
        })
        .catch(function () { setTimeout(poll, 3000); });
    };
    if (!done[order.getAttribute("data-state")]) { setTimeout(poll, 500); }
  }
})();
