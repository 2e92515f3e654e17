// The queue chart: polls /api/queues and draws waiting, in-flight and completed-per-second lines
// for every queue on one canvas. Our own code, no library.
(function () {
  "use strict";
  var canvas = document.getElementById("chart");
  if (!canvas || !canvas.getContext) { return; }
  var ctx = canvas.getContext("2d");
  var colours = ["#8b1a1a", "#1a4f8b", "#2e7d32", "#b26a00", "#6a1b9a", "#00838f"];

  function series(samples) {
    var lines = {};
    samples.forEach(function (s, i) {
      s.queues.forEach(function (q) {
        var add = function (what, y) {
          var key = q.name + " " + what;
          (lines[key] = lines[key] || []).push([s.t, y]);
        };
        add("waiting", q.waiting);
        add("in flight", q.inflight);
        var prev = i > 0 && samples[i - 1].queues.filter(function (p) { return p.name === q.name; })[0];
        if (prev) { add("done/s", Math.max(0, (q.complete - prev.complete) / (s.t - samples[i - 1].t))); }
      });
    });
    return lines;
  }

  function draw(samples) {
    var lines = series(samples), names = Object.keys(lines);
    var w = canvas.width, h = canvas.height, pad = 40;
    ctx.clearRect(0, 0, w, h);
    if (samples.length < 2) { ctx.fillText("collecting samples…", pad, h / 2); return; }
    var t0 = samples[0].t, t1 = samples[samples.length - 1].t, top = 1;
    names.forEach(function (n) { lines[n].forEach(function (p) { top = Math.max(top, p[1]); }); });
    ctx.strokeStyle = "#999"; ctx.beginPath();
    ctx.moveTo(pad, 10); ctx.lineTo(pad, h - pad); ctx.lineTo(w - 10, h - pad); ctx.stroke();
    ctx.fillStyle = "#333";
    ctx.fillText(String(Math.round(top)), 4, 14); ctx.fillText("0", 4, h - pad);
    ctx.fillText(Math.round(t1 - t0) + " s", w - 50, h - pad + 16);
    var legend = document.getElementById("legend");
    legend.textContent = "";
    names.forEach(function (n, i) {
      var colour = colours[i % colours.length];
      ctx.strokeStyle = colour; ctx.beginPath();
      lines[n].forEach(function (p, j) {
        var x = pad + (w - pad - 10) * (p[0] - t0) / Math.max(1e-9, t1 - t0);
        var y = h - pad - (h - pad - 10) * p[1] / top;
        if (j === 0) { ctx.moveTo(x, y); } else { ctx.lineTo(x, y); }
      });
      ctx.stroke();
      var label = document.createElement("span");
      label.style.color = colour; label.textContent = "— " + n;
      legend.appendChild(label);
    });
  }

  function poll() {
    fetch(canvas.dataset.src, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (body) { draw(body.samples); setTimeout(poll, body.every * 1000); })
      .catch(function () { setTimeout(poll, 5000); });
  }
  poll();
})();
