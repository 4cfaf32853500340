// smartingest's only script besides htmx: while a form posts (a connection tested, a model previewed, a
// run started), its buttons say so and cannot be pressed twice. Without it the page simply waits.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (event.defaultPrevented || !(form instanceof HTMLFormElement)) return;
  const pressed = event.submitter;
  form.setAttribute("aria-busy", "true");
  // After the browser has read the form: a disabled button would not send its name and value.
  setTimeout(() => {
    for (const button of form.querySelectorAll("button:not(:disabled)")) {
      button.disabled = true;
      button.dataset.held = "";  // disabled here, not by the page (a read-only Save stays disabled)
      if (button === pressed) {
        button.dataset.label = button.textContent;
        button.textContent = button.dataset.busy || "Working…";
      }
    }
  }, 0);
});

// Coming back to a page from the browser's history shows it as it was left: busy. Undo that.
window.addEventListener("pageshow", (event) => {
  if (!event.persisted) return;
  for (const form of document.querySelectorAll("form[aria-busy]")) {
    form.removeAttribute("aria-busy");
    for (const button of form.querySelectorAll("button[data-held]")) {
      button.disabled = false;
      delete button.dataset.held;
      if (button.dataset.label !== undefined) button.textContent = button.dataset.label;
    }
  }
});
