// Charts of the dashboard and of the insights page (Chart.js, vendored). The data comes from the page as
// <script type="application/json"> blocks (json_script: never executed, so the Content-Security-Policy holds);
// each <canvas data-chart="key"> is drawn from that block's entry `key` ({labels, datasets}); the canvas's
// data-* attributes say how (data-chart-type, data-stacked, data-horizontal, data-unit). No inline code.
"use strict";
(() => {
  const palette = ["#2457c5", "#137333", "#9a6700", "#7b3fb6", "#00838f", "#c2185b", "#5d6d7e",
                   "#ef6c00", "#6a1b9a", "#455a64"];
  const statusColours = {
    delivered: "#137333", failed: "#b3261e", cancelled: "#98a2b3", suppressed: "#7c5cbf", invalid: "#b3261e",
  };

  function readJson(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function coloured(datasets, type) {
    return datasets.map((set, i) => {
      const colour = statusColours[set.label] || palette[i % palette.length];
      const line = type === "line";
      return Object.assign({ borderColor: colour, backgroundColor: line ? colour + "33" : colour,
                             borderWidth: line ? 2 : 0, tension: 0.2, pointRadius: line ? 2 : 0 }, set);
    });
  }

  function draw(canvas, chart) {
    const type = canvas.dataset.chartType || "bar";
    const stacked = canvas.dataset.stacked === "true";
    const horizontal = canvas.dataset.horizontal === "true";
    const unit = canvas.dataset.unit || "";
    const previous = window.Chart.getChart(canvas);
    if (previous) previous.destroy();
    return new window.Chart(canvas, {
      type,
      data: { labels: chart.labels, datasets: coloured(chart.datasets, type) },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        indexAxis: horizontal ? "y" : "x",
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked, ticks: { maxRotation: 60, autoSkip: true } },
          y: { stacked, beginAtZero: true, ticks: unit ? { callback: (v) => v + " " + unit } : {} },
        },
        plugins: {
          legend: { display: chart.datasets.length > 1, position: "bottom" },
          tooltip: unit ? { callbacks: { label: (c) => c.dataset.label + ": " + c.formattedValue + " " + unit } } : {},
        },
      },
    });
  }

  function drawAll(root, dataId) {
    const data = readJson(dataId);
    if (!data || !window.Chart) return;
    root.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      const chart = data[canvas.dataset.chart];
      if (chart) draw(canvas, chart);
    });
  }

  // The range picker: the custom days only when "Custom" is chosen; a preset range applies at once.
  function rangePicker() {
    const select = document.querySelector("[data-range-select]");
    if (!select) return;
    const sync = () => document.querySelectorAll("[data-custom-range]").forEach((label) => {
      label.hidden = select.value !== "custom";
    });
    sync();
    select.addEventListener("change", () => {
      sync();
      if (select.value !== "custom") select.form.requestSubmit();
    });
  }

  function start() {
    rangePicker();
    drawAll(document, "dashboard-data");
    drawAll(document, "insights-data");
  }

  // The insights result is swapped in by htmx: draw its chart once it is in the page.
  document.addEventListener("htmx:afterSettle", (event) => {
    if (event.target.querySelector && event.target.querySelector("#insights-data")) drawAll(event.target, "insights-data");
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
