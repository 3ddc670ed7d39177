// Opens a citation's source beside the briefing, the quoted span marked and scrolled into
// view. Without this script every chip is a plain link to the same source on its own page.
"use strict";
(function () {
  function pane() { return document.getElementById("source-pane"); }

  async function open(chip) {
    const target = pane();
    const response = await fetch(chip.dataset.fragment, { credentials: "same-origin" });
    if (!response.ok) { window.location.assign(chip.href); return; }
    // The fragment is rendered and escaped by the server; nothing of it runs (see the CSP).
    target.innerHTML = await response.text();
    target.hidden = false;
    target.dataset.shown = chip.dataset.fragment;
    target.closest(".reader").classList.add("with-pane");
    const close = target.querySelector(".close-pane");
    if (close) { close.hidden = false; close.addEventListener("click", () => shut(chip)); }
    document.querySelectorAll("a.chip[aria-current]").forEach((c) => c.removeAttribute("aria-current"));
    chip.setAttribute("aria-current", "true");
    const mark = target.querySelector("mark");
    if (mark) { mark.scrollIntoView({ block: "center" }); mark.focus({ preventScroll: true }); }
  }

  function shut(chip) {
    const target = pane();
    target.hidden = true;
    target.innerHTML = "";
    delete target.dataset.shown;
    target.closest(".reader").classList.remove("with-pane");
    chip.removeAttribute("aria-current");
    chip.focus();
  }

  document.addEventListener("click", (event) => {
    const chip = event.target.closest("a.chip[data-fragment]");
    if (!chip || !pane() || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    open(chip).catch(() => window.location.assign(chip.href));
  });
})();
