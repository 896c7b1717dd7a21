// The serve form's memory line: what the chosen context needs against what the node has
// (the same sentence as models_app/templatetags/portal_ui.py memory_line), rewritten as the context changes.
(function () {
  "use strict";
  var line = document.querySelector("[data-memory-estimate]");
  var input = line && line.closest("form").querySelector("input[name=context_size]");
  if (!line || !input || !window.aiportalFormat) return;
  var size = window.aiportalFormat.size;
  var d = line.dataset;

  function update() {
    var typed = input.value.trim();
    var context = /^\d+$/.test(typed) ? Number(typed) : Number(d.context);
    var needed = Number(d.base) + Number(d.perToken) * context;
    var text = "Needs about " + size(needed) + " of memory with a context of " + context.toLocaleString("en-US") + " tokens";
    var over = false;
    if (d.available === "") {
      text += ".";
    } else if (needed > Number(d.available)) {
      over = true;
      text += ", but node " + d.node + " has only " + size(Math.max(Number(d.available), 0)) +
        " available: use a smaller context or stop another model.";
    } else {
      text += "; node " + d.node + " has " + size(Number(d.available)) + " available.";
    }
    line.textContent = text;
    line.classList.toggle("memory-over", over);
  }
  input.addEventListener("input", update);
  update();
})();
