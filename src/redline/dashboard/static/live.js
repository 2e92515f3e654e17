// The dashboard's one script (ours, no library). It keeps a page live over one Server-Sent
// Events stream (/live): counts marked data-q/data-f are set from each sample, the overview's
// chart is redrawn, and when a part the page shows changed (body's data-watch against the
// sample's digest) the page is re-read once and its data-region parts swapped in place.
// Forms marked data-confirm ask first. The status badge says live, or reconnecting.
(function () {
  "use strict";
  var badge = document.getElementById("live");
  var watch = document.body.dataset.watch || "";
  var samples = [], every = 2, seen = null, refreshing = false;
  var rendered = parseFloat(document.body.dataset.rendered) || 0;  // the page's numbers are from then
  var colours = ["#b3261e", "#1a5fb4", "#26783a", "#a15c00", "#6a3d9a", "#00727d"];

  var lastGood = null;

  function status(state, text) {
    if (!badge) { return; }
    badge.dataset.state = state;
    badge.textContent = text;
    var banner = document.getElementById("banner");
    banner.hidden = state !== "down";
    if (state === "down") {
      var since = lastGood ? " The numbers shown are from " + lastGood.toLocaleTimeString() + "." : "";
      banner.textContent = text.replace("…", "") + ": the page goes on by itself once it is back." + since;
    }
  }

  function setCounts(sample) {
    sample.queues.forEach(function (q) {
      document.querySelectorAll("[data-q]").forEach(function (el) {
        if (el.dataset.q !== q.name || !(el.dataset.f in q)) { return; }
        var value = String(q[el.dataset.f]);
        var link = el.querySelector("a");
        if ((link || el).textContent !== value) { (link || el).textContent = value; flash(el); }
      });
    });
  }

  function flash(el) {
    el.classList.remove("changed");
    void el.offsetWidth;  // restart the animation
    el.classList.add("changed");
  }

  function watched(digest) {
    var keys = Object.keys(digest).filter(function (k) { return watch === "*" || k === watch; });
    return keys.map(function (k) { return k + "=" + digest[k]; }).join(" ");
  }

  // A form a person is filling in (its field has the focus) is not replaced under them: not
  // when the re-read starts, nor when its answer comes.
  function editing() {
    return Boolean(document.activeElement && document.activeElement.closest("[data-region] form"));
  }

  function busy(on) {  // aria-busy: the regions are being re-read (assistive tech waits)
    document.querySelectorAll("[data-region]").forEach(function (region) {
      if (on) { region.setAttribute("aria-busy", "true"); } else { region.removeAttribute("aria-busy"); }
    });
  }

  function refresh() {
    if (refreshing || !document.querySelector("[data-region]") || editing()) { return; }
    refreshing = true;
    busy(true);
    fetch(location.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        if (editing()) { return; }  // the next change tries again
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-region]").forEach(function (old) {
          var next = fresh.querySelector('[data-region="' + old.dataset.region + '"]');
          if (next && next.innerHTML !== old.innerHTML) { old.innerHTML = next.innerHTML; }
        });
      })
      .catch(function () { /* the next change tries again */ })
      .then(function () { refreshing = false; busy(false); });
  }

  function onSample(sample) {
    if (!sample.ok) { status("down", "Redis unreachable, reconnecting…"); return; }
    // A page the dashboard could not read Redis for loads again once a sample says it can.
    if (document.body.dataset.reload === "live" && sample.t > rendered) { location.reload(); return; }
    status("live", "live");
    lastGood = new Date(sample.t * 1000);
    samples.push(sample);
    if (samples.length > 300) { samples.shift(); }
    if (sample.t >= rendered) { setCounts(sample); }  // an older sample would set them back
    draw();
    var now = watched(sample.digest || {});
    // The first sample is the baseline; one taken after the page was rendered may already
    // show a change the page missed, so it re-reads the page once then.
    if (seen === null ? sample.t > rendered : now !== seen) { refresh(); }
    seen = now;
  }

  var source = null;

  function connect() {
    if (!window.EventSource) { status("down", "no live updates in this browser"); return; }
    if (source || document.hidden) { return; }
    source = new EventSource("/live");
    source.addEventListener("history", function (e) {
      var body = JSON.parse(e.data);
      every = body.every; samples = body.samples;
      if (samples.length) { onSample(samples.pop()); }
    });
    source.addEventListener("sample", function (e) { onSample(JSON.parse(e.data)); });
    source.onerror = function () { status("down", "connection lost, reconnecting…"); };
  }

  // -- the overview's chart: waiting, in flight, completed per second, for every queue -----
  function series() {
    var lines = {};
    samples.forEach(function (s, i) {
      var prev = i > 0 ? samples[i - 1] : null;
      s.queues.forEach(function (q) {
        var add = function (what, y) { (lines[q.name + " " + what] = lines[q.name + " " + what] || []).push([s.t, y]); };
        add("waiting", q.all_waiting);
        add("in flight", q.all_inflight);
        var before = prev && prev.queues.filter(function (p) { return p.name === q.name; })[0];
        if (before) { add("done/s", Math.max(0, (q.complete - before.complete) / Math.max(1e-9, s.t - prev.t))); }
      });
    });
    return lines;
  }

  function draw() {
    var canvas = document.getElementById("chart");
    if (!canvas || !canvas.getContext) { return; }
    var ratio = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = w * ratio; canvas.height = h * ratio;
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = "#3d3d3d";
    var lines = series(), names = Object.keys(lines), left = 44, bottom = h - 26;
    if (samples.length < 2) { ctx.fillText("collecting samples…", left, h / 2); return; }
    var t0 = samples[0].t, t1 = samples[samples.length - 1].t, top = 1;
    names.forEach(function (n) { lines[n].forEach(function (p) { top = Math.max(top, p[1]); }); });
    ctx.strokeStyle = "#8a8a8a"; ctx.beginPath();
    ctx.moveTo(left, 8); ctx.lineTo(left, bottom); ctx.lineTo(w - 8, bottom); ctx.stroke();
    ctx.textAlign = "right";
    ctx.fillText(String(Math.round(top * 10) / 10), left - 6, 14); ctx.fillText("0", left - 6, bottom);
    ctx.fillText("now", w - 8, bottom + 16);
    ctx.textAlign = "left";
    ctx.fillText(Math.round(t1 - t0) + " s ago", left, bottom + 16);
    var legend = document.getElementById("legend");
    legend.textContent = "";
    names.forEach(function (n, i) {
      var colour = colours[i % colours.length];
      ctx.strokeStyle = colour; ctx.lineWidth = 2; ctx.beginPath();
      lines[n].forEach(function (p, j) {
        var x = left + (w - left - 8) * (p[0] - t0) / Math.max(1e-9, t1 - t0);
        var y = bottom - (bottom - 8) * p[1] / top;
        if (j === 0) { ctx.moveTo(x, y); } else { ctx.lineTo(x, y); }
      });
      ctx.stroke(); ctx.lineWidth = 1;
      var label = document.createElement("span"), swatch = document.createElement("i");
      swatch.style.background = colour;
      label.appendChild(swatch); label.appendChild(document.createTextNode(n));
      legend.appendChild(label);
    });
  }

  document.addEventListener("submit", function (e) {
    var form = e.target, button = e.submitter;
    var question = (button && button.dataset.confirm) || form.dataset.confirm;
    if (question && !window.confirm(question)) { e.preventDefault(); }
  });
  // A page left for another closes its stream (a browser allows a few connections a host;
  // a page kept for the back button must not hold one), and opens it again when shown.
  // A tab in the background closes its stream too (HTTP/1.1 allows 6 connections a host, so
  // more open tabs than that would starve the next page) and catches up when shown again.
  function disconnect() { if (source) { source.close(); source = null; } }
  window.addEventListener("pagehide", disconnect);
  window.addEventListener("pageshow", connect);
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { disconnect(); status("paused", "paused while hidden"); return; }
    if (!source) { status("connecting", "connecting…"); }
    connect();
  });
  window.addEventListener("resize", draw);
  if (document.hidden) { status("paused", "paused while hidden"); }
  connect();
})();
