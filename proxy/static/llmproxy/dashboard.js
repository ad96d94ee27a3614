/* The admin dashboard: four charts from the page's data, and the live feed over a WebSocket. */
(function () {
  "use strict";
  var C = window.llmproxyCharts, data = C && C.data("llp-chart-data");
  if (data) {
    var t = data.totals;
    C.make("llp-chart-requests", "bar", [C.series("succeeded", t.requests.map(function (v, i) { return v - t.errors[i]; }), 0),
                                         C.series("failed", t.errors, 3)], data, true);
    C.make("llp-chart-tokens", "bar", [C.series("in", t.prompt_tokens, 0), C.series("out", t.completion_tokens, 1)], data, true);
    C.make("llp-chart-cost", "line", [C.series("cost", t.cost_usd, 2, { fill: true, backgroundColor: "rgba(42,157,92,.15)", tension: .25, pointRadius: 2 })],
           data, false, C.money);
    C.split("llp-chart-split", data, document.getElementById("llp-split-dim"), document.getElementById("llp-split-metric"));
  }
})();
