// Result page: the fan chart (yearly P5/P25/P50/P75/P95) and the terminal-value histogram,
// drawn with uPlot from the JSON embedded in the page.
(function () {
  "use strict";
  function data(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  function money(v) {
    if (v == null) return "";
    var a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + "B";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e3) return (v / 1e3).toFixed(0) + "k";
    return v.toFixed(0);
  }
  function width(el) { return Math.max(280, el.clientWidth || 600); }
  var charts = [];

  var fan = data("fan-data");
  var fanEl = document.getElementById("fan-chart");
  if (fan && fanEl && window.uPlot) {
    var axes = [
      { label: "Year", stroke: "#374151", grid: { stroke: "#eceff3" } },
      { label: "Value", stroke: "#374151", size: 70, values: function (u, vals) { return vals.map(money); }, grid: { stroke: "#eceff3" } }
    ];
    var opts = {
      width: width(fanEl), height: 320,
      scales: { x: { time: false } },
      axes: axes,
      series: [
        { label: "Year" },
        { label: "P5", stroke: "#93b4f5", width: 1, value: function (u, v) { return money(v); } },
        { label: "P25", stroke: "#5b8def", width: 1, value: function (u, v) { return money(v); } },
        { label: "Median", stroke: "#1d4ed8", width: 2.5, value: function (u, v) { return money(v); } },
        { label: "P75", stroke: "#5b8def", width: 1, value: function (u, v) { return money(v); } },
        { label: "P95", stroke: "#93b4f5", width: 1, value: function (u, v) { return money(v); } }
      ],
      bands: [
        { series: [5, 1], fill: "rgba(59, 130, 246, 0.14)" },
        { series: [4, 2], fill: "rgba(37, 99, 235, 0.28)" }
      ]
    };
    charts.push([new uPlot(opts, [fan.years, fan.p5, fan.p25, fan.p50, fan.p75, fan.p95], fanEl), fanEl]);
  }

  var hist = data("hist-data");
  var histEl = document.getElementById("hist-chart");
  if (hist && histEl && window.uPlot && hist.counts.length) {
    var mids = hist.counts.map(function (_, i) { return (hist.edges[i] + hist.edges[i + 1]) / 2; });
    var barWidth = hist.edges.length > 1 ? (hist.edges[hist.edges.length - 1] - hist.edges[0]) / hist.counts.length : 1;
    var bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.9, Infinity], align: 0 }) : null;
    var hopts = {
      width: width(histEl), height: 240,
      scales: { x: { time: false, range: [hist.edges[0], hist.edges[hist.edges.length - 1] + barWidth * 0.01] } },
      axes: [
        { label: "Terminal value", stroke: "#374151", values: function (u, vals) { return vals.map(money); }, grid: { stroke: "#eceff3" } },
        { label: "Paths", stroke: "#374151", size: 60, grid: { stroke: "#eceff3" } }
      ],
      series: [
        { label: "Value", value: function (u, v) { return money(v); } },
        { label: "Paths", stroke: "#1d4ed8", fill: "rgba(37, 99, 235, 0.55)", paths: bars, points: { show: false } }
      ],
      legend: { show: true }
    };
    charts.push([new uPlot(hopts, [mids, hist.counts], histEl), histEl]);
  }

  var pending = null;
  window.addEventListener("resize", function () {
    if (pending) return;
    pending = window.requestAnimationFrame(function () {
      pending = null;
      charts.forEach(function (c) { c[0].setSize({ width: width(c[1]), height: c[0].height }); });
    });
  });
})();
