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
