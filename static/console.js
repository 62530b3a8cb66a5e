// The console's few behaviours beyond htmx, as delegated listeners: no inline handlers, so the
// Content-Security-Policy needs neither 'unsafe-inline' nor 'unsafe-eval' (htmx runs with allowEval off).
// data-remove-closest="<selector>": a click removes the closest ancestor matching it (a form row).
// data-check-all="<selector>": a checkbox that sets every box matching it in its table.
"use strict";
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-remove-closest]");
  if (button) button.closest(button.dataset.removeClosest)?.remove();
});
document.addEventListener("change", (event) => {
  const box = event.target.closest("[data-check-all]");
  if (!box) return;
  box.closest("table").querySelectorAll(box.dataset.checkAll).forEach((other) => { other.checked = box.checked; });
});

// -- live stream: data-live-toggle="<poller selector>" pauses / resumes the poller's requests ------------------
// (htmx's trigger filters would need eval; cancelling the poll's request keeps the CSP strict). The state sits
// on the button: the poller itself is replaced by each answer.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-live-toggle]");
  if (!button) return;
  const paused = button.getAttribute("aria-pressed") !== "true";
  button.setAttribute("aria-pressed", String(paused));
  button.textContent = paused ? "Resume" : "Pause";
  const state = document.getElementById("live-state");
  if (state) state.textContent = paused ? "paused: no new rows until you resume" : "following: new rows every 2 s";
});
document.addEventListener("htmx:beforeRequest", (event) => {
  const poller = event.detail.elt;
  if (!poller || !poller.matches || !poller.matches("[data-live]")) return;
  const toggle = document.querySelector(`[data-live-toggle="#${poller.id}"]`);
  if (toggle && toggle.getAttribute("aria-pressed") === "true") event.preventDefault();
});

// Phone width: the menu button folds the navigation away (console.css shows the button below 760 px only).
// The class is set here, so without JavaScript the navigation simply stays open.
document.querySelector(".topbar")?.classList.add("nav-folds");
document.addEventListener("click", (event) => {
  const toggle = event.target.closest("[data-toggle-nav]");
  if (!toggle) return;
  const open = toggle.closest(".topbar").classList.toggle("nav-open");
  toggle.setAttribute("aria-expanded", String(open));
});

// data-supersedes: a newer request of this element aborts its own older one still in flight. With hx-sync's
// "abort" strategy alone (the lead board's filters: they never reload the table under a change being saved) a
// search typed on while the previous one loads would be dropped instead of applied.
const supersedable = new WeakMap();
document.addEventListener("htmx:beforeRequest", (event) => {
  if (event.detail.elt.matches?.("[data-supersedes]")) supersedable.set(event.detail.elt, event.detail.xhr);
});
document.addEventListener("htmx:afterRequest", (event) => {
  if (supersedable.get(event.detail.elt) === event.detail.xhr) supersedable.delete(event.detail.elt);
});
document.addEventListener("htmx:confirm", (event) => {
  // htmx:confirm comes before hx-sync's checks: the older request is gone when they run.
  const older = supersedable.get(event.detail.elt);
  if (!older) return;
  supersedable.delete(event.detail.elt);
  older.abort();
});
