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

// Follows a queued or running job (Server-Sent Events) and opens the briefing when it ends.
(function () {
  const box = document.getElementById("job-progress");
  if (!box || !window.EventSource) return;
  const stage = document.getElementById("job-stage");
  const bar = document.getElementById("job-bar");
  const status = document.getElementById("job-status");
  const events = new EventSource(box.dataset.events);
  function show(event) {
    const job = JSON.parse(event.data);
    status.textContent = job.status;
    const p = job.progress;
    if (p && p.total) {
      bar.max = p.total;
      bar.value = p.done;
      stage.textContent = p.stage + " " + p.done + "/" + p.total;
    } else if (p) {
      stage.textContent = p.stage;
    }
    return job;
  }
  events.addEventListener("progress", show);
  events.addEventListener("done", (event) => { show(event); events.close(); window.location.reload(); });
  events.onerror = () => { events.close(); setTimeout(() => window.location.reload(), 2000); };
})();
