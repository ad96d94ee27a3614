/* llmproxy's charts: a few Chart.js helpers shared by the admin dashboard and the portal.
   Data comes from a json_script element: {buckets, hourly, totals: {metric: [...]}, split: {dim: [{name, metric: [...]}]}} */
(function () {
  "use strict";
  var PALETTE = ["#2f6fde", "#e07b00", "#2a9d5c", "#c0392b", "#8250df", "#0f9db3", "#8c959f"];
  function css(name, fallback) {
    var v = getComputedStyle(document.documentElement).getPropertyValue(name);
    return (v && v.trim()) || fallback;
  }
  function labels(data) {
    return data.buckets.map(function (iso) {
      var d = new Date(iso);
      if (data.hourly) { return String(d.getUTCHours()).padStart(2, "0") + ":00"; }
      return d.toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
    });
  }
  function money(v) { return "$" + (v >= 1 || v === 0 ? v.toFixed(2) : Number(v.toPrecision(3))); }
  function base(stacked, yFormat) {
    var grid = css("--hairline-color", "#ddd"), text = css("--body-quiet-color", "#666");
    return {
      responsive: true, maintainAspectRatio: false, animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12, color: text } },
                 tooltip: yFormat ? { callbacks: { label: function (c) { return c.dataset.label + ": " + yFormat(c.parsed.y); } } } : {} },
      scales: {
        x: { stacked: stacked, grid: { display: false }, ticks: { color: text, maxRotation: 0, autoSkip: true, autoSkipPadding: 8 } },
        y: { stacked: stacked, beginAtZero: true, grid: { color: grid }, ticks: yFormat ? { color: text, callback: yFormat } : { color: text, precision: 0 } }
      }
    };
  }
  function make(id, type, datasets, data, stacked, yFormat) {
    var el = document.getElementById(id);
    if (!el || !window.Chart) { return null; }
    var chart = new window.Chart(el, { type: type, data: { labels: labels(data), datasets: datasets }, options: base(stacked, yFormat) });
    el.setAttribute("data-ready", "1");
    return chart;
  }
  function series(label, values, i, extra) {
    var c = PALETTE[i % PALETTE.length], d = { label: label, data: values, backgroundColor: c, borderColor: c, borderWidth: 1 };
    for (var k in (extra || {})) { d[k] = extra[k]; }
    return d;
  }
  function metricOf(row, metric) {
    if (metric === "tokens") { return row.prompt_tokens.map(function (v, i) { return v + row.completion_tokens[i]; }); }
    return row[metric];
  }
  function split(id, data, dimSelect, metricSelect) {
    var chart = null;
    function draw() {
      var rows = data.split[dimSelect.value] || [], metric = metricSelect.value;
      var sets = rows.map(function (r, i) { return series(r.name, metricOf(r, metric), i); });
      if (chart) { chart.destroy(); }
      chart = make(id, "bar", sets, data, true, metric === "cost_usd" ? money : null);
    }
    dimSelect.addEventListener("change", draw);
    metricSelect.addEventListener("change", draw);
    draw();
  }
  window.llmproxyCharts = { make: make, series: series, split: split, money: money,
    data: function (id) { var el = document.getElementById(id); return el ? JSON.parse(el.textContent) : null; } };
})();
