// The model page's chart of the last hour: download and upload rates and peers (uPlot), drawn from the
// portal's history and grown live from the model updates the page's socket receives.
(function () {
  "use strict";
  var box = document.querySelector("[data-transfer-chart]");
  if (!box || !window.uPlot) return;
  var HOUR = 3600, MIB = 1024 * 1024;
  var data = [[], [], [], []];  // seconds, download MiB/s, upload MiB/s, peers
  var chart = null;

  function add(at, down, up, peers) {
    var t = Math.floor(at / 1000);
    if (data[0].length && t <= data[0][data[0].length - 1]) return;
    data[0].push(t); data[1].push(down / MIB); data[2].push(up / MIB); data[3].push(peers);
    while (data[0].length && data[0][0] < t - HOUR) data.forEach(function (series) { series.shift(); });
  }

  function width() { return Math.max(260, Math.floor(box.getBoundingClientRect().width)); }

  function draw() {
    var empty = box.querySelector("[data-chart-empty]");
    if (empty) empty.hidden = data[0].length > 0;
    if (!data[0].length) return;
    if (chart) { chart.setData(data); return; }
    var css = getComputedStyle(document.documentElement);
    var primary = css.getPropertyValue("--primary").trim() || "#4338ca";
    var ok = css.getPropertyValue("--ok").trim() || "#067647";
    var muted = css.getPropertyValue("--muted").trim() || "#5b6472";
    var rate = function (u, values) { return values.map(function (v) { return v.toFixed(v < 10 ? 1 : 0) + " MiB/s"; }); };
    chart = new uPlot({
      width: width(), height: 180,
      series: [
        {},
        {label: "Down", stroke: primary, width: 2, value: function (u, v) { return v == null ? "–" : v.toFixed(2) + " MiB/s"; }},
        {label: "Up", stroke: ok, width: 2, value: function (u, v) { return v == null ? "–" : v.toFixed(2) + " MiB/s"; }},
        {label: "Peers", stroke: muted, width: 1, dash: [4, 4], scale: "peers"},
      ],
      axes: [
        {stroke: muted, grid: {stroke: "rgba(128,128,128,.15)"}},
        {stroke: muted, values: rate, size: 82, grid: {stroke: "rgba(128,128,128,.15)"}},
        {stroke: muted, scale: "peers", side: 1, grid: {show: false}},
      ],
      scales: {
        // Always the last hour, however few samples there are yet.
        x: {time: true, range: function (u, min, max) { var end = Math.max(max, Date.now() / 1000); return [end - HOUR, end]; }},
        peers: {range: function (u, min, max) { return [0, Math.max(1, max)]; }},
      },
    }, data, box);
    box.dataset.ready = "true";
  }

  fetch(box.dataset.url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (body) {
      (body && body.result || []).forEach(function (s) { add(Date.parse(s.at), s.downloadRate, s.uploadRate, s.peers); });
      draw();
    });

  document.addEventListener("aiportal:model", function (event) {
    var model = event.detail;
    if (model.id !== box.dataset.model) return;
    var still = !model.downloadRate && !model.uploadRate && !model.peers;
    if (still && !data[0].length) return;  // nothing moving and no history: keep saying so
    add(Date.parse(model.updatedAt) || Date.now(), model.downloadRate || 0, model.uploadRate || 0, model.peers || 0);
    draw();
  });
  window.addEventListener("resize", function () { if (chart) chart.setSize({width: width(), height: 180}); });
})();
