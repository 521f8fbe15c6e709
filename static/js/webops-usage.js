// Usage page: draws the daily calls per API key (uPlot) from the JSON in #usage-data.
// Without JavaScript the tables below the chart hold the same numbers.
(function () {
  "use strict";
  var PALETTE = ["#2f5bd3", "#0f8a5f", "#c2410c", "#7c3aed", "#b91c1c", "#0e7490", "#a16207", "#be185d"];

  function draw() {
    var holder = document.getElementById("usage-chart");
    var source = document.getElementById("usage-data");
    if (!holder || !source || typeof uPlot === "undefined") return;
    var data = JSON.parse(source.textContent);
    var series = [{ label: "Day" }];
    var columns = [data.days];
    data.series.forEach(function (s, i) {
      var colour = PALETTE[i % PALETTE.length];
      series.push({
        label: s.label,
        stroke: colour,
        fill: colour + "22",
        width: 2,
        points: { show: true, size: 6, fill: colour },
        value: function (u, v) { return v == null ? "–" : v + " calls"; }
      });
      columns.push(s.calls);
    });
    var width = function () { return Math.max(280, holder.clientWidth); };
    var plot = new uPlot({
      width: width(),
      height: 280,
      series: series,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(4, Math.ceil(max * 1.15))]; } } },
      axes: [
        { stroke: "#4b5563", grid: { stroke: "#eceff3" }, space: 48,
          incrs: [86400, 2 * 86400, 7 * 86400],
          values: function (u, splits) {
            return splits.map(function (s) { return new Date(s * 1000).toISOString().slice(5, 10); });
          } },
        { stroke: "#4b5563", grid: { stroke: "#eceff3" }, label: "Calls", size: 56 }
      ],
      legend: { live: true },
      cursor: { points: { size: 8 } }
    }, columns, holder);
    window.addEventListener("resize", function () { plot.setSize({ width: width(), height: 280 }); });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
