// The console overview's only script: reload it every 15 s to show new uploads and suspense
// entries, but never while the operator is writing a resolution note (a reload would throw the
// typed text away). Without JavaScript the page simply does not refresh itself.
(function () {
  "use strict";
  var typing = function () {
    var fields = document.querySelectorAll("main form textarea, main form input[type=text]");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value !== "" || fields[i] === document.activeElement) { return true; }
    }
    return false;
  };
  var tick = function () {
    if (typing()) { setTimeout(tick, 15000); return; }
    window.location.reload();
  };
  setTimeout(tick, 15000);
})();
