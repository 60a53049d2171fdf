// Chart tooltips and self-refresh; the pages work without this file.
(function () {
  "use strict";

  function tooltips() {
    var tip = document.createElement("div");
    tip.className = "tooltip";
    tip.hidden = true;
    tip.setAttribute("role", "tooltip");
    document.body.appendChild(tip);
    document.querySelectorAll("svg.timeline .bar").forEach(function (bar) {
      var title = bar.querySelector("title");
      bar.addEventListener("mousemove", function (event) {
        // The native <title> tooltip would show on top of ours: park its text.
        if (title && title.textContent) { title.dataset.text = title.textContent; title.textContent = ""; }
        tip.textContent = bar.dataset.tip || "";
        tip.hidden = false;
        var x = Math.min(event.clientX + 12, window.innerWidth - tip.offsetWidth - 8);
        tip.style.left = x + "px";
        tip.style.top = (event.clientY + 14) + "px";
      });
      bar.addEventListener("mouseleave", function () {
        tip.hidden = true;
        if (title && title.dataset.text) { title.textContent = title.dataset.text; }
      });
    });
    return tip;
  }

  function refresh(tip) {
    var seconds = parseInt(document.body.dataset.refresh || "0", 10);
    if (!seconds) { return; }
    function tick() {
      var busy = document.hidden || !tip.hidden ||
        (document.activeElement && /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName));
      if (busy) { window.setTimeout(tick, 5000); return; }
      window.location.reload();
    }
    window.setTimeout(tick, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () { refresh(tooltips()); });
})();
