// Light or dark: the toggle's choice is remembered; without one the page follows the system setting.
(function () {
  "use strict";
  var root = document.documentElement, KEY = "aiportal-theme";
  var system = window.matchMedia("(prefers-color-scheme: dark)");
  var button = document.querySelector("[data-theme-toggle]");

  function stored() { try { return localStorage.getItem(KEY); } catch (e) { return null; } }

  function apply(theme) {
    root.dataset.theme = theme;
    document.querySelectorAll("link[data-theme-sheet]").forEach(function (sheet) {
      sheet.disabled = sheet.dataset.themeSheet !== theme;
    });
    if (button) {
      button.setAttribute("aria-pressed", theme === "dark" ? "true" : "false");
      button.textContent = theme === "dark" ? "Light mode" : "Dark mode";
    }
  }

  apply(root.dataset.theme === "dark" ? "dark" : "light");
  system.addEventListener("change", function (event) { if (!stored()) apply(event.matches ? "dark" : "light"); });
  if (button) {
    button.addEventListener("click", function () {
      var next = root.dataset.theme === "dark" ? "light" : "dark";
      try { localStorage.setItem(KEY, next); } catch (e) {}
      apply(next);
    });
  }
})();
