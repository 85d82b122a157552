// The UGEM web console's one script (no inline script: the CSP allows none).
// Every page works without it; it only saves a click: a <select data-autosubmit>
// (the connections' state filter) submits its form when its value changes.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
});
