// Live model updates: the /ws/models/ socket pushes model objects (SPEC §4); the page patches itself.
(function () {
  "use strict";
  var PHASES = {queued: "transfer", downloading: "transfer", verifying: "transfer", ready: "ready",
    starting: "running", serving: "running", stopping: "running", error: "error"};
  var UNITS = ["B", "KB", "MB", "GB", "TB"];
  // A ready file whose llama-server failed shows that failure (as models_app/templatetags/portal_ui.py).
  // A model whose nodes are all offline shows `offline` and offers nothing to do but look.
  function offline(model) {
    var copies = model.copies || [];
    return copies.length > 0 && copies.every(function (c) { return c.status === "offline"; });
  }
  function phaseOf(model) {
    if (offline(model)) return "offline";
    var failed = (model.instances || []).some(function (i) { return i.status === "error"; });
    return model.status === "ready" && failed ? "error" : PHASES[model.status] || "transfer";
  }

  function size(value) {
    var n = Number(value) || 0, unit = 0;
    while (n >= 1000 && unit < UNITS.length - 1) { n /= 1000; unit++; }
    return (unit === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + UNITS[unit];
  }
  var FORMATS = {
    size: size,
    rate: function (v) { return size(v) + "/s"; },
    percent: function (v) { return (Number(v) || 0).toFixed(0) + "%"; },
    ratio: function (v) { return (Number(v) || 0).toFixed(2); },
    firstline: function (v) { return String(v).split("\n")[0]; }
  };
  window.aiportalFormat = FORMATS;  // the serve form's memory line uses the same units

  function valueOf(model, name) {
    if (name === "serverUrl") return model.server ? model.server.url : "";
    if (name === "shownStatus") return offline(model) ? "offline" : model.status;
    if (name.indexOf(".") > 0) {
      return name.split(".").reduce(function (v, key) { return v == null ? v : v[key]; }, model);
    }
    return model[name];
  }

  var announcer = document.querySelector("[data-announcer]");
  function announce(root, model) {
    if (!announcer || root.dataset.status === model.status) return;
    announcer.textContent = (model.name || model.id) + " is now " + model.status + (model.error ? ": " + model.error : "");
  }

  // Parts that are not plain figures (model facts, server, log, files) come fresh from the server.
  function refreshParts(root) {
    var url = root.classList.contains("detail") ? location.pathname
      : list && list.dataset.rowUrl.replace("__id__", encodeURIComponent(root.dataset.modelId));
    if (!url || !root.querySelector("[data-refresh]")) return;
    fetch(url, {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : ""; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        root.querySelectorAll("[data-refresh]").forEach(function (part) {
          var next = fresh.querySelector('[data-refresh="' + part.dataset.refresh + '"]');
          if (next) replaceKeepingLogScroll(part, next);
        });
      }, function () {});
  }

  // A server log opens at its newest line and follows new lines, unless the person scrolled up to read.
  function atBottom(box) { return box.scrollHeight - box.scrollTop - box.clientHeight < 8; }
  function logsToBottom(scope) {
    scope.querySelectorAll("pre.log").forEach(function (box) { box.scrollTop = box.scrollHeight; });
  }
  function replaceKeepingLogScroll(part, next) {
    var old = part.querySelector("pre.log");
    var kept = old && !atBottom(old) ? old.scrollTop : null;
    part.replaceWith(next);
    if (kept === null) { logsToBottom(next); return; }
    next.querySelectorAll("pre.log").forEach(function (box) { box.scrollTop = kept; });
  }

  // The copies and servers on each machine move while the model's own status stays (a copy to another
  // node, a second machine serving it).
  function copiesKey(model) {
    var copies = model.copies || [], instances = model.instances || [];
    if (copies.length < 2 && instances.length < 2) return "";
    return copies.map(function (c) {
      return c.node + ":" + c.status + ":" + Math.floor(Number(c.downloadProgress) || 0) + ":" + (c.note || "");
    }).concat(instances.map(function (i) { return i.node + "=" + i.status + ":" + i.desired; })).join(",");
  }

  function patch(root, model) {
    var copies = copiesKey(model);
    var changed = root.dataset.status !== model.status || (root.dataset.copies || copies) !== copies;
    root.dataset.copies = copies;
    announce(root, model);
    var progress = Math.max(0, Math.min(100, Number(model.downloadProgress) || 0));
    root.dataset.status = model.status;
    root.dataset.phase = phaseOf(model);
    root.dataset.hasMagnet = model.magnetUri ? "1" : "0";
    root.dataset.sizeKnown = model.size ? "1" : "0";
    root.querySelectorAll("[data-field]").forEach(function (el) {
      var value = valueOf(model, el.dataset.field), format = el.dataset.format;
      if (value === undefined || value === null) value = "";
      if (format === "link") { el.href = value || "#"; el.textContent = value; return; }
      if (format === "value") { el.value = value; return; }
      el.textContent = FORMATS[format] ? FORMATS[format](value) : String(value);
      if (el.classList.contains("badge")) el.className = "badge badge-" + value;
    });
    root.querySelectorAll("[data-bar]").forEach(function (bar) {
      bar.setAttribute("aria-valuenow", progress.toFixed(0));
      bar.firstElementChild.style.width = progress + "%";
    });
    root.querySelectorAll("[data-copy-magnet]").forEach(function (btn) { btn.dataset.copyMagnet = model.magnetUri || ""; });
    if (changed) refreshParts(root);
  }

  function rowsFor(id) {
    return document.querySelectorAll('[data-model-id="' + CSS.escape(id) + '"]');
  }

  var list = document.querySelector("[data-model-list]");
  var pending = {};

  function insertRow(id) {
    if (!list || pending[id]) return;
    pending[id] = true;
    fetch(list.dataset.rowUrl.replace("__id__", encodeURIComponent(id)), {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : ""; })
      .then(function (html) {
        delete pending[id];
        if (!html || rowsFor(id).length) return;
        list.insertAdjacentHTML("afterbegin", html);
        toggleEmpty();
      }, function () { delete pending[id]; });
  }

  function toggleEmpty() {
    var empty = document.querySelector("[data-empty]");
    if (empty && list) empty.hidden = list.children.length > 0;
  }

  function onUpdate(model) {
    document.dispatchEvent(new CustomEvent("aiportal:model", {detail: model}));  // the transfer chart listens
    var roots = rowsFor(model.id);
    if (!roots.length) { insertRow(model.id); return; }
    roots.forEach(function (root) {
      // A snapshot fetched on (re)connect may be older than an event that overtook it.
      if (root.dataset.updatedAt && model.updatedAt < root.dataset.updatedAt) return;
      root.dataset.updatedAt = model.updatedAt;
      patch(root, model);
    });
  }

  // Events sent before the socket opened (or while it was down) are lost: catch up from the API.
  function resync() {
    fetch("/api/ai/list", {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body || !body.ok) return;
        var seen = {};
        body.result.forEach(function (model) { seen[model.id] = true; onUpdate(model); });
        document.querySelectorAll("[data-model-id]").forEach(function (root) {
          if (!seen[root.dataset.modelId]) onRemoved(root.dataset.modelId);
        });
      }, function () {});
  }

  function onRemoved(id) {
    rowsFor(id).forEach(function (root) {
      if (root.classList.contains("detail")) {
        root.dataset.phase = "removed";
        var note = document.createElement("p");
        note.className = "alert alert-error";
        note.setAttribute("role", "alert");
        note.textContent = "This model was removed.";
        root.prepend(note);
      } else {
        root.remove();
      }
    });
    toggleEmpty();
  }

  var indicator = document.querySelector("[data-live-indicator]");
  function setLive(text, on) {
    if (!indicator) return;
    indicator.textContent = text;
    indicator.classList.toggle("live-on", on);
  }

  var delay = 500;
  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + "/ws/models/");
    socket.onopen = function () {
      delay = 500;
      setLive("Live", true);
      document.documentElement.dataset.live = "1";
      resync();
    };
    socket.onmessage = function (event) {
      var data = JSON.parse(event.data);
      if (data.type === "model.update") onUpdate(data.model);
      else if (data.type === "model.removed") onRemoved(data.id);
    };
    socket.onclose = function (event) {
      document.documentElement.dataset.live = "0";
      if (event.code === 4401) { setLive("Signed out", false); return; }
      setLive("Reconnecting…", false);
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }

  function copy(text, button) {
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else { fallbackCopy(text); done(); }
  }
  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text; area.setAttribute("readonly", ""); area.style.position = "fixed"; area.style.opacity = "0";
    document.body.appendChild(area); area.select(); document.execCommand("copy"); area.remove();
  }

  document.addEventListener("click", function (event) {
    var btn = event.target.closest("[data-copy-magnet], [data-copy-target]");
    if (!btn) return;
    var text = btn.dataset.copyMagnet !== undefined ? btn.dataset.copyMagnet : document.getElementById(btn.dataset.copyTarget).value;
    if (text) copy(text, btn);
  });
  document.addEventListener("submit", function (event) {
    var message = event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });

  // While a model is starting or serving, its detail page follows the server log.
  var detail = document.querySelector(".detail[data-model-id]");
  if (detail) {
    logsToBottom(detail);
    setInterval(function () {
      if (detail.dataset.phase === "running" && document.visibilityState === "visible") refreshParts(detail);
    }, 5000);
  }

  connect();
})();
