// queuectl dashboard: the overview's chart, and error messages for htmx actions.
// Everything else is server-rendered HTML that htmx refreshes.
"use strict";

function flash(message) {
  const box = document.getElementById("flash");
  if (!box) return;
  box.textContent = message; // text, never HTML
  box.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { box.hidden = true; }, 8000);
}

document.addEventListener("htmx:responseError", (event) => {
  const xhr = event.detail.xhr;
  let message = xhr.responseText || xhr.statusText;
  try {
    message = JSON.parse(message).error || message;
  } catch (_) {
    const doc = new DOMParser().parseFromString(message, "text/html");
    message = (doc.querySelector(".error") || doc.body).textContent.trim();
  }
  flash(`${xhr.status}: ${message}`);
});

// Empty filter fields stay out of the request, and so out of the address bar.
document.addEventListener("htmx:configRequest", (event) => {
  if (event.detail.verb !== "get") return;
  for (const [name, value] of Object.entries(event.detail.parameters)) {
    if (value === "") delete event.detail.parameters[name];
  }
});

document.addEventListener("htmx:sendError", () => flash("The dashboard did not answer."));

function startChart() {
  const box = document.getElementById("chart");
  if (!box || typeof uPlot === "undefined") return;
  const note = document.getElementById("chart-note");
  let plot = null;

  function data(status) {
    const xs = [], done = [], failed = [], rate = [];
    for (const m of status.throughput) {
      xs.push(Date.parse(m.at) / 1000);
      done.push(m.completed);
      failed.push(m.failed);
      const all = m.completed + m.failed;
      rate.push(all ? (100 * m.failed) / all : null);
    }
    return [xs, done, failed, rate];
  }

  function draw(status) {
    const series = data(status);
    const total = (i) => series[i].reduce((a, b) => a + b, 0);
    const ran = total(1) + total(2);
    note.textContent = ran
      ? `${total(1).toLocaleString()} completed, ${total(2).toLocaleString()} failed in the last hour ` +
        `(failure rate ${((100 * total(2)) / ran).toFixed(1)} %)`
      : "No runs finished in the last hour.";
    if (plot) {
      plot.setData(series);
      return;
    }
    plot = new uPlot({
      width: Math.max(320, box.clientWidth),
      height: 220,
      series: [
        { label: "UTC", value: (u, v) => (v == null ? "--" : new Date(v * 1000).toISOString().slice(11, 16)) },
        { label: "runs completed / min", stroke: "#2e7d32", fill: "rgba(46,125,50,0.12)", points: { show: false } },
        { label: "runs failed / min", stroke: "#c62828", fill: "rgba(198,40,40,0.10)", points: { show: false } },
        { label: "failure rate %", stroke: "#ef6c00", dash: [4, 4], scale: "%", points: { show: false } },
      ],
      axes: [
        // UTC and 24 hours, as every other time on the dashboard
        { values: (u, splits) => splits.map((s) => new Date(s * 1000).toISOString().slice(11, 16)) },
        { label: "runs" },
        { side: 1, scale: "%", label: "%", grid: { show: false } },
      ],
      scales: { "%": { range: [0, 100] } },
    }, series, box);
    window.addEventListener("resize", () => plot.setSize({ width: Math.max(320, box.clientWidth), height: 220 }));
  }

  async function refresh() {
    try {
      const response = await fetch(box.dataset.statusUrl, { headers: { Accept: "application/json" } });
      if (response.ok) draw(await response.json());
    } catch (_) { /* the next tick tries again */ }
  }
  refresh();
  setInterval(refresh, 5000);
}

document.addEventListener("DOMContentLoaded", startChart);
