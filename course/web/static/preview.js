// The preview's only script. Every control is a plain link or form that works without it;
// this saves the page reloads, sizes the email's frame, and reloads when files change.
(function () {
  "use strict";

  function remember(name, value) {
    // Keep the URL and the forms' hidden fields in step, so a reload or a post keeps the view.
    var url = new URL(window.location.href);
    url.searchParams.set(name, value);
    window.history.replaceState(null, "", url);
    document.querySelectorAll('input[type="hidden"][name="' + name + '"]').forEach(function (input) {
      input.value = value;
    });
  }

  function fit(frame) {
    // Same-origin srcdoc (sandbox="allow-same-origin", no scripts), so its document is readable.
    var doc = frame.contentDocument;
    if (!doc || !doc.documentElement || frame.offsetParent === null) return; // hidden tab
    frame.style.height = "200px"; // shrink first: scrollHeight never reports less than the frame
    frame.style.height = doc.documentElement.scrollHeight + "px";
  }

  function select(attribute, state, chosen) {
    document.querySelectorAll("[" + attribute + "]").forEach(function (el) {
      el.setAttribute(state, String(el === chosen));
    });
  }

  document.querySelectorAll("[data-tab]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      select("data-tab", "aria-selected", link);
      document.querySelectorAll("[data-panel]").forEach(function (panel) {
        panel.hidden = panel.dataset.panel !== link.dataset.tab;
      });
      remember("tab", link.dataset.tab);
      document.querySelectorAll("iframe.email").forEach(fit);
    });
  });

  document.querySelectorAll("[data-width]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      select("data-width", "aria-pressed", link);
      document.querySelectorAll("iframe.email").forEach(function (frame) {
        frame.classList.remove("auto");
        frame.style.width = link.dataset.px + "px";
        fit(frame);
      });
      remember("width", link.dataset.width);
    });
  });

  // No width chosen: the stylesheet sized the frame for this screen; say which preset that is.
  var auto = document.querySelector("iframe.email.auto");
  if (auto) {
    var shown = document.querySelector(
      '[data-width="' + (window.matchMedia("(max-width: 720px)").matches ? "phone" : "desktop") + '"]'
    );
    if (shown) select("data-width", "aria-pressed", shown);
  }

  document.querySelectorAll("iframe.email").forEach(function (frame) {
    frame.addEventListener("load", function () { fit(frame); });
    if (frame.contentDocument && frame.contentDocument.readyState === "complete") fit(frame);
  });

  document.querySelectorAll("select[data-autosubmit]").forEach(function (box) {
    box.addEventListener("change", function () { box.form.submit(); });
  });

  var watch = document.body.dataset.watch;
  var version = document.body.dataset.version;
  var checks = document.body.dataset.checks; // set while a check is still running
  if (!watch || !version) return;
  // Once the operator is on the way to another page (a link, a filter), a reload of this one
  // must not cancel that navigation.
  var leaving = false;
  window.addEventListener("beforeunload", function () { leaving = true; });
  window.setInterval(function () {
    var active = document.activeElement;
    if (leaving || (active && active.matches("input, select, textarea"))) return; // never discard typing
    fetch("/api/version", { cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (now) {
        if (leaving || !now) return;
        if (now[watch] && now[watch] !== version) window.location.reload();
        else if (checks && now.checks !== checks) window.location.reload();
      })
      .catch(function () { /* the preview is restarting; ask again next time */ });
  }, 1000);
})();
