// faultline report: draws the embedded history on canvases. History values reach the page
// only through textContent and canvas fillText, never as HTML.
(function () {
  'use strict';
  var raw = JSON.parse(document.getElementById('data').textContent);
  var OPS = raw.ops, M = raw.meta;
  // Op fields: lane, invoke µs, complete µs (-1: never), f, outcome, key, node, error,
  // history index, process, value, [invoke value when it differs]
  var LANE = 0, T0 = 1, T1 = 2, F = 3, OUT = 4, KEY = 5, NODE = 6, ERR = 7, IDX = 8, PROC = 9, VAL = 10, IVAL = 11;
  var OUTCOME = ['ok', 'fail', 'info', 'pending'];
  var FILL = ['#6cc070', '#e06b6b', '#f0b64a', '#c9a0e0'];
  var END = Math.max(M.end, 1);
  var HL = {};
  M.hl.forEach(function (i) { HL[i] = true; });
  var ML = 64, MR = 12, MT = 20, MB = 24;
  var full = { t0: -END * 0.01, t1: END * 1.01 };
  var view = { t0: full.t0, t1: full.t1 };
  var keyFilter = -1;
  var charts = [];
  var tip = document.getElementById('tip');

  function fmtT(us) {
    var span = view.t1 - view.t0;
    if (span > 20e6) return (us / 1e6).toFixed(span > 200e6 ? 0 : 1) + ' s';
    if (span > 50e3) return (us / 1e3).toFixed(span > 2e6 ? 0 : 1) + ' ms';
    return (us / 1e3).toFixed(3) + ' ms';
  }
  function jv(v) { return v === undefined ? '' : JSON.stringify(v); }
  function niceStep(span, n) {
    var raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * mag >= raw) return steps[i] * mag;
    return 10 * mag;
  }

  // Lanes of ops, each sorted by invoke time: a process runs one op at a time, so ops of a
  // lane never overlap and hover is a binary search.
  var nLanes = Math.max(M.lanes.length, 1);
  var laneOps = [];
  for (var l = 0; l < nLanes; l++) laneOps.push([]);
  for (var i = 0; i < OPS.length; i++) laneOps[OPS[i][LANE]].push(i);
  laneOps.forEach(function (a) { a.sort(function (x, y) { return OPS[x][T0] - OPS[y][T0]; }); });

  function Chart(canvas, height, draw, hover) {
    this.c = canvas; this.h = height; this.drawFn = draw; this.hoverFn = hover;
    this.ctx = canvas.getContext('2d');
    var self = this, drag = null;
    canvas.addEventListener('wheel', function (e) {
      e.preventDefault();
      var tc = self.tAt(e.offsetX), span = view.t1 - view.t0;
      var ns = Math.min(Math.max(span * (e.deltaY > 0 ? 1.25 : 0.8), 50), (full.t1 - full.t0) * 1.5);
      view.t0 = tc - (tc - view.t0) * ns / span;
      view.t1 = view.t0 + ns;
      redrawAll();
    }, { passive: false });
    canvas.addEventListener('mousedown', function (e) { drag = { x: e.clientX, t0: view.t0, t1: view.t1 }; });
    window.addEventListener('mouseup', function () { drag = null; });
    window.addEventListener('mousemove', function (e) {
      if (!drag) return;
      var dt = (e.clientX - drag.x) / self.plotW() * (drag.t1 - drag.t0);
      view.t0 = drag.t0 - dt; view.t1 = drag.t1 - dt;
      redrawAll();
    });
    canvas.addEventListener('dblclick', resetView);
    canvas.addEventListener('mousemove', function (e) {
      if (drag || !self.hoverFn) return;
      var lines = self.hoverFn(e.offsetX, e.offsetY);
      showTip(lines, e.clientX, e.clientY);
    });
    canvas.addEventListener('mouseleave', function () { tip.hidden = true; });
  }
  Chart.prototype.plotW = function () { return Math.max(this.w - ML - MR, 10); };
  Chart.prototype.x = function (t) { return ML + (t - view.t0) / (view.t1 - view.t0) * this.plotW(); };
  Chart.prototype.tAt = function (x) { return view.t0 + (x - ML) / this.plotW() * (view.t1 - view.t0); };
  Chart.prototype.resize = function () {
    var dpr = window.devicePixelRatio || 1;
    this.w = Math.max(this.c.parentNode.clientWidth - 2, 300);
    this.c.width = Math.round(this.w * dpr); this.c.height = Math.round(this.h * dpr);
    this.c.style.height = this.h + 'px';
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  };
  Chart.prototype.render = function () {
    var g = this.ctx;
    g.clearRect(0, 0, this.w, this.h);
    g.save();
    this.drawFn(g, this);
    g.restore();
  };
  // Fault periods shaded over the plot area, labelled along the top.
  Chart.prototype.faults = function (g, top, bottom, labels) {
    var self = this;
    M.faults.forEach(function (f) {
      var a = self.x(f[2]), b = self.x(f[3]);
      if (b < ML || a > self.w - MR) return;
      a = Math.max(a, ML); b = Math.min(b, self.w - MR);
      g.globalAlpha = 0.35; g.fillStyle = f[4];
      g.fillRect(a, top, Math.max(b - a, 2), bottom - top);
      g.globalAlpha = 1;
      if (labels && b - a > 24) {
        g.fillStyle = '#444'; g.font = '11px sans-serif';
        g.fillText(f[0], a + 2, top - 5);
      }
    });
  };
  Chart.prototype.axis = function (g, y) {
    var span = view.t1 - view.t0, step = niceStep(span, Math.max(this.plotW() / 110, 2));
    g.strokeStyle = '#999'; g.fillStyle = '#555'; g.font = '11px sans-serif'; g.textAlign = 'center';
    g.beginPath(); g.moveTo(ML, y); g.lineTo(this.w - MR, y); g.stroke();
    for (var t = Math.ceil(view.t0 / step) * step; t <= view.t1; t += step) {
      var x = this.x(t);
      g.beginPath(); g.moveTo(x, y); g.lineTo(x, y + 4); g.stroke();
      g.fillText(fmtT(t), x, y + 15);
    }
    g.textAlign = 'left';
  };
  Chart.prototype.clip = function (g, top, bottom) {
    g.beginPath(); g.rect(ML, 0, this.plotW(), bottom); g.clip();
  };

  function showTip(lines, cx, cy) {
    if (!lines) { tip.hidden = true; return; }
    tip.textContent = '';
    var pre = document.createElement('pre');
    pre.textContent = lines.join('\n');
    tip.appendChild(pre);
    tip.hidden = false;
    var w = tip.offsetWidth, h = tip.offsetHeight;
    tip.style.left = Math.min(cx + 14, window.innerWidth - w - 8) + 'px';
    tip.style.top = (cy + h + 20 > window.innerHeight ? cy - h - 10 : cy + 14) + 'px';
  }

  function opLines(i) {
    var o = OPS[i], lines = [];
    var inv = o.length > IVAL ? o[IVAL] : o[VAL];
    lines.push('op ' + M.fs[o[F]] + '   (history event ' + o[IDX] + ')');
    lines.push('process ' + o[PROC] + '   key ' + M.keys[o[KEY]] + (M.strings[o[NODE]] ? '   node ' + M.strings[o[NODE]] : ''));
    lines.push('invoked   ' + (o[T0] / 1e3).toFixed(3) + ' ms   value ' + jv(inv));
    if (o[T1] >= 0) {
      lines.push(OUTCOME[o[OUT]] + '        ' + (o[T1] / 1e3).toFixed(3) + ' ms   value ' + jv(o[VAL]));
      lines.push('latency   ' + ((o[T1] - o[T0]) / 1e3).toFixed(3) + ' ms');
    } else {
      lines.push('never completed');
    }
    if (M.strings[o[ERR]]) lines.push('error     ' + M.strings[o[ERR]]);
    if (HL[o[IDX]]) lines.push('** part of the counterexample **');
    return lines;
  }

  // --- Timeline: one lane per process -------------------------------------------------
  var laneH = Math.max(3, Math.min(18, Math.floor(560 / nLanes)));
  function drawTimeline(g, ch) {
    var top = MT, bottom = MT + nLanes * laneH;
    for (var l = 0; l < nLanes; l++) {
      if (l % 2) { g.fillStyle = '#f7f7f7'; g.fillRect(ML, top + l * laneH, ch.plotW(), laneH); }
    }
    ch.faults(g, top, bottom, true);
    g.fillStyle = '#444'; g.font = '11px sans-serif'; g.textAlign = 'right';
    var every = Math.ceil(12 / laneH);
    for (l = 0; l < nLanes; l += every) g.fillText(M.lanes[l], ML - 6, top + l * laneH + Math.min(laneH, 12) - 1);
    g.textAlign = 'left';
    ch.axis(g, bottom + 2);
    g.save(); ch.clip(g, top, bottom);
    var visible = [], xmin = ML, xmax = ch.w - MR;
    for (var i = 0; i < OPS.length; i++) {
      var o = OPS[i];
      if (keyFilter >= 0 && o[KEY] !== keyFilter) continue;
      var x0 = ch.x(o[T0]), x1 = ch.x(o[T1] < 0 ? END : o[T1]);
      if (x1 < xmin || x0 > xmax) continue;
      var y = top + o[LANE] * laneH;
      g.fillStyle = FILL[o[OUT]];
      g.fillRect(x0, y + (laneH > 4 ? 1 : 0), Math.max(x1 - x0, 1), laneH > 4 ? laneH - 2 : laneH);
      if (HL[o[IDX]]) {
        g.strokeStyle = '#111'; g.lineWidth = 2;
        g.strokeRect(x0 - 1, y, Math.max(x1 - x0, 1) + 2, laneH);
      }
      if (visible.length < 3000) visible.push(i);
    }
    // Dense bars hide the shading underneath: tint fault periods over them too.
    g.globalAlpha = 0.22;
    M.faults.forEach(function (f) {
      var a = ch.x(f[2]), b = ch.x(f[3]);
      g.fillStyle = f[4];
      g.fillRect(a, top, Math.max(b - a, 2), bottom - top);
    });
    g.globalAlpha = 1;
    // Values on the bars once zoomed in far enough to read them.
    if (laneH >= 11 && visible.length < 3000) {
      g.fillStyle = '#111'; g.font = '10px monospace';
      visible.forEach(function (i) {
        var o = OPS[i], x0 = Math.max(ch.x(o[T0]), ML), x1 = ch.x(o[T1] < 0 ? END : o[T1]);
        var room = Math.floor((x1 - x0 - 4) / 6);
        if (room < 3) return;
        var text = M.fs[o[F]] + ' ' + jv(o[VAL]);
        g.fillText(text.length > room ? text.slice(0, room - 1) + '…' : text, x0 + 2, top + o[LANE] * laneH + laneH - 3);
      });
    }
    g.restore();
  }
  function hoverTimeline(x, y) {
    var lane = Math.floor((y - MT) / laneH);
    if (lane < 0 || lane >= nLanes || x < ML) return null;
    var ch = charts[0], t = ch.tAt(x), slack = 3 / ch.plotW() * (view.t1 - view.t0);
    var a = laneOps[lane], lo = 0, hi = a.length - 1, found = -1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (OPS[a[mid]][T0] <= t) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    // The op covering t, else the nearer neighbour within a few pixels.
    var best = -1, bestD = slack;
    [found, found + 1].forEach(function (k) {
      if (k < 0 || k >= a.length) return;
      var o = OPS[a[k]], end = o[T1] < 0 ? END : o[T1];
      var d = t < o[T0] ? o[T0] - t : (t > end ? t - end : 0);
      if (d <= bestD && (keyFilter < 0 || o[KEY] === keyFilter)) { best = k; bestD = d; }
    });
    if (best < 0) return null;
    found = best;
    return opLines(a[found]);
  }

  // --- Latency: scatter by f and outcome, with quantile lines ----------------------------
  var PALETTE = ['#1f77b4', '#9467bd', '#17becf', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#2ca02c'];
  var latMin = Infinity, latMax = 0;
  OPS.forEach(function (o) {
    if (o[T1] < 0) return;
    var l = Math.max(o[T1] - o[T0], 1);
    if (l < latMin) latMin = l;
    if (l > latMax) latMax = l;
  });
  if (!isFinite(latMin)) { latMin = 1; latMax = 10; }
  var lg0 = Math.floor(Math.log10(latMin)), lg1 = Math.max(Math.ceil(Math.log10(latMax)), lg0 + 1);
  var LAT_H = 300;
  function latY(l) { return MT + (1 - (Math.log10(Math.max(l, 1)) - lg0) / (lg1 - lg0)) * (LAT_H - MT - MB); }
  function drawLatency(g, ch) {
    var top = MT, bottom = LAT_H - MB;
    ch.faults(g, top, bottom, true);
    g.strokeStyle = '#eee'; g.fillStyle = '#555'; g.font = '11px sans-serif'; g.textAlign = 'right';
    for (var e = lg0; e <= lg1; e++) {
      var y = latY(Math.pow(10, e));
      g.beginPath(); g.moveTo(ML, y); g.lineTo(ch.w - MR, y); g.stroke();
      var ms = Math.pow(10, e) / 1e3;
      g.fillText((ms >= 1 ? ms.toFixed(0) : ms.toString()) + ' ms', ML - 6, y + 4);
    }
    g.textAlign = 'left';
    ch.axis(g, bottom + 2);
    g.save(); ch.clip(g, top, bottom + 1);
    var buckets = 60, bw = (view.t1 - view.t0) / buckets, per = [];
    for (var b = 0; b < buckets; b++) per.push([]);
    for (var i = 0; i < OPS.length; i++) {
      var o = OPS[i];
      if (o[T1] < 0 || (keyFilter >= 0 && o[KEY] !== keyFilter)) continue;
      var x = ch.x(o[T0]);
      if (x < ML || x > ch.w - MR) continue;
      var l = o[T1] - o[T0], yy = latY(l), c = PALETTE[o[F] % PALETTE.length];
      if (o[OUT] === 0) {
        g.fillStyle = c; g.fillRect(x - 1, yy - 1, 3, 3);
        per[Math.min(Math.floor((o[T0] - view.t0) / bw), buckets - 1)].push(l);
      } else if (o[OUT] === 1) {
        g.strokeStyle = c; g.lineWidth = 1.2; g.beginPath();
        g.moveTo(x - 3, yy - 3); g.lineTo(x + 3, yy + 3); g.moveTo(x + 3, yy - 3); g.lineTo(x - 3, yy + 3); g.stroke();
      } else {
        g.strokeStyle = c; g.lineWidth = 1.2; g.beginPath();
        g.moveTo(x, yy - 4); g.lineTo(x + 4, yy + 3); g.lineTo(x - 4, yy + 3); g.closePath(); g.stroke();
      }
    }
    [[0.5, '#000', 'p50'], [0.95, '#555', 'p95'], [0.99, '#c00', 'p99']].forEach(function (q) {
      g.strokeStyle = q[1]; g.lineWidth = 1.6; g.setLineDash(q[0] === 0.5 ? [] : [5, 3]);
      g.beginPath();
      var started = false, lastX = 0, lastY = 0;
      for (var b = 0; b < buckets; b++) {
        var a = per[b];
        if (a.length < 3) continue;
        if (!a.sorted) { a.sort(function (p, r) { return p - r; }); a.sorted = true; }
        var v = a[Math.min(a.length - 1, Math.ceil(q[0] * a.length) - 1)];
        var x = ch.x(view.t0 + (b + 0.5) * bw), y = latY(v);
        if (started) g.lineTo(x, y); else { g.moveTo(x, y); started = true; }
        lastX = x; lastY = y;
      }
      g.stroke(); g.setLineDash([]);
      if (started) { g.fillStyle = q[1]; g.font = 'bold 11px sans-serif'; g.fillText(q[2], Math.min(lastX + 4, ch.w - MR - 24), lastY - 3); }
    });
    g.restore();
  }

  // --- Throughput: completions per second by outcome -------------------------------------
  var THR_H = 220;
  function drawThroughput(g, ch) {
    var top = MT, bottom = THR_H - MB, buckets = Math.max(Math.min(Math.floor(ch.plotW() / 8), 150), 10);
    var bw = (view.t1 - view.t0) / buckets, counts = [[], [], []];
    for (var b = 0; b < buckets; b++) { counts[0].push(0); counts[1].push(0); counts[2].push(0); }
    for (var i = 0; i < OPS.length; i++) {
      var o = OPS[i];
      if (o[T1] < 0 || (keyFilter >= 0 && o[KEY] !== keyFilter)) continue;
      var k = Math.floor((o[T1] - view.t0) / bw);
      if (k >= 0 && k < buckets) counts[Math.min(o[OUT], 2)][k]++;
    }
    var perSec = 1e6 / bw, max = 1;
    counts.forEach(function (c) { c.forEach(function (n) { if (n * perSec > max) max = n * perSec; }); });
    var step = niceStep(max, 4), ymax = Math.ceil(max / step) * step;
    function Y(v) { return bottom - v / ymax * (bottom - top); }
    ch.faults(g, top, bottom, true);
    g.strokeStyle = '#eee'; g.fillStyle = '#555'; g.font = '11px sans-serif'; g.textAlign = 'right';
    for (var v = 0; v <= ymax + 1e-9; v += step) {
      g.beginPath(); g.moveTo(ML, Y(v)); g.lineTo(ch.w - MR, Y(v)); g.stroke();
      g.fillText(v >= 100 ? v.toFixed(0) : String(+v.toFixed(2)), ML - 6, Y(v) + 4);
    }
    g.save(); g.translate(12, (top + bottom) / 2); g.rotate(-Math.PI / 2); g.textAlign = 'center';
    g.fillText('ops/s', 0, 0); g.restore();
    g.textAlign = 'left';
    ch.axis(g, bottom + 2);
    g.save(); ch.clip(g, top, bottom + 1);
    ['#2e9e4f', '#d33', '#e09a00'].forEach(function (color, o) {
      g.strokeStyle = color; g.lineWidth = 1.6; g.beginPath();
      for (var b = 0; b < buckets; b++) {
        var x = ch.x(view.t0 + (b + 0.5) * bw), y = Y(counts[o][b] * perSec);
        if (b) g.lineTo(x, y); else g.moveTo(x, y);
      }
      g.stroke();
    });
    g.restore();
  }

  // --- Locks: one lane per lock, overlapping holds stacked -------------------------------
  var lockRows = [], LOCK_ROW = 20;
  M.locks.forEach(function (lock) {
    var rowsEnd = [], holds = lock.holds.slice().sort(function (a, b) { return a[1] - b[1]; });
    var placed = holds.map(function (h) {
      var end = h[2] < 0 ? END : h[2], r = 0;
      while (r < rowsEnd.length && rowsEnd[r] > h[1]) r++;
      rowsEnd[r] = end;
      return { h: h, row: r };
    });
    lockRows.push({ name: lock.name, rows: Math.max(rowsEnd.length, 1), placed: placed });
  });
  var lockTop = [], lockH = MT;
  lockRows.forEach(function (l) { lockTop.push(lockH); lockH += l.rows * LOCK_ROW + 8; });
  function drawLocks(g, ch) {
    var bottom = lockH;
    ch.faults(g, MT, bottom, true);
    g.font = '11px sans-serif';
    lockRows.forEach(function (l, li) {
      var y0 = lockTop[li];
      g.fillStyle = '#444'; g.textAlign = 'right';
      g.fillText(l.name.length > 9 ? l.name.slice(0, 8) + '…' : l.name, ML - 6, y0 + 14);
      g.textAlign = 'left';
      g.strokeStyle = '#ddd'; g.beginPath(); g.moveTo(ML, y0 + l.rows * LOCK_ROW + 4); g.lineTo(ch.w - MR, y0 + l.rows * LOCK_ROW + 4); g.stroke();
    });
    ch.axis(g, bottom + 2);
    g.save(); ch.clip(g, MT, bottom);
    lockRows.forEach(function (l, li) {
      l.placed.forEach(function (p) {
        var h = p.h, x0 = ch.x(h[1]), x1 = ch.x(h[2] < 0 ? END : h[2]);
        if (x1 < ML || x0 > ch.w - MR) return;
        var y = lockTop[li] + p.row * LOCK_ROW + 2, w = Math.max(x1 - x0, 1);
        g.globalAlpha = h[4] ? 1 : 0.45;
        g.fillStyle = '#6cc070'; g.fillRect(x0, y, w, LOCK_ROW - 4);
        g.globalAlpha = 1;
        if (h[5]) { g.strokeStyle = '#d00'; g.lineWidth = 2; g.strokeRect(x0, y, w, LOCK_ROW - 4); }
        var label = 'p' + h[0] + (h[3] === null || h[3] === undefined ? '' : ' #' + jv(h[3]));
        if (w > label.length * 6 + 4) { g.fillStyle = '#111'; g.font = '10px monospace'; g.fillText(label, x0 + 2, y + LOCK_ROW - 8); }
      });
    });
    g.restore();
  }
  function hoverLocks(x, y) {
    var ch = lockChart, t = ch.tAt(x);
    for (var li = 0; li < lockRows.length; li++) {
      var l = lockRows[li], y0 = lockTop[li];
      if (y < y0 || y > y0 + l.rows * LOCK_ROW) continue;
      var row = Math.floor((y - y0) / LOCK_ROW);
      for (var k = 0; k < l.placed.length; k++) {
        var p = l.placed[k], h = p.h;
        if (p.row === row && h[1] <= t && (h[2] < 0 ? END : h[2]) >= t) {
          return ['lock ' + l.name, 'process ' + h[0], 'held from ' + (h[1] / 1e3).toFixed(3) + ' ms',
            h[2] < 0 ? 'never released' : 'released  ' + (h[2] / 1e3).toFixed(3) + ' ms',
            'fencing token ' + (h[3] === null || h[3] === undefined ? '(none)' : jv(h[3])),
            h[4] ? 'grant certain' : 'acquire unknown: maybe held', h[5] ? '** in a violation **' : ''];
        }
      }
    }
    return null;
  }

  // --- Wiring ------------------------------------------------------------------------------
  var pending = false;
  function redrawAll() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; charts.forEach(function (c) { c.render(); }); });
  }
  function resetView() { view.t0 = full.t0; view.t1 = full.t1; redrawAll(); }
  charts.push(new Chart(document.getElementById('tl'), MT + nLanes * laneH + MB + 4, drawTimeline, hoverTimeline));
  charts.push(new Chart(document.getElementById('lat'), LAT_H, drawLatency, null));
  charts.push(new Chart(document.getElementById('thr'), THR_H, drawThroughput, null));
  var lockCanvas = document.getElementById('lk'), lockChart = null;
  if (lockCanvas && lockRows.length) {
    lockChart = new Chart(lockCanvas, lockH + MB + 4, drawLocks, hoverLocks);
    charts.push(lockChart);
  }
  document.getElementById('reset').addEventListener('click', resetView);
  var sel = document.getElementById('keysel');
  M.keys.forEach(function (k, i) {
    var opt = document.createElement('option');
    opt.value = String(i); opt.textContent = k;
    sel.appendChild(opt);
  });
  sel.addEventListener('change', function () { keyFilter = parseInt(sel.value, 10); redrawAll(); });

  function legendItem(parent, draw, text) {
    var s = document.createElement('span'); s.className = 'item';
    var c = document.createElement('canvas'); c.width = 14; c.height = 10; c.style.border = 'none';
    draw(c.getContext('2d')); s.appendChild(c);
    s.appendChild(document.createTextNode(text)); parent.appendChild(s);
  }
  var ll = document.getElementById('latlegend');
  M.fs.forEach(function (f, i) {
    legendItem(ll, function (g) { g.fillStyle = PALETTE[i % PALETTE.length]; g.fillRect(4, 3, 5, 5); }, f);
  });
  legendItem(ll, function (g) { g.fillStyle = '#333'; g.fillRect(5, 4, 3, 3); }, 'ok');
  legendItem(ll, function (g) { g.strokeStyle = '#333'; g.beginPath(); g.moveTo(3, 1); g.lineTo(10, 8); g.moveTo(10, 1); g.lineTo(3, 8); g.stroke(); }, 'fail');
  legendItem(ll, function (g) { g.strokeStyle = '#333'; g.beginPath(); g.moveTo(7, 1); g.lineTo(11, 9); g.lineTo(3, 9); g.closePath(); g.stroke(); }, 'info');
  legendItem(ll, function (g) { g.fillStyle = '#000'; g.fillRect(0, 4, 14, 2); }, 'p50');
  legendItem(ll, function (g) { g.fillStyle = '#555'; g.fillRect(0, 4, 5, 2); g.fillRect(8, 4, 5, 2); }, 'p95');
  legendItem(ll, function (g) { g.fillStyle = '#c00'; g.fillRect(0, 4, 5, 2); g.fillRect(8, 4, 5, 2); }, 'p99');
  var fl = document.getElementById('faultlegend'), seen = {};
  M.faults.forEach(function (f) {
    if (seen[f[0]]) return; seen[f[0]] = true;
    legendItem(fl, function (g) { g.globalAlpha = 0.6; g.fillStyle = f[4]; g.fillRect(0, 0, 14, 10); }, f[0]);
  });
  if (M.faults.length) fl.insertBefore(document.createTextNode('fault periods (shaded):'), fl.firstChild);

  function layout() { charts.forEach(function (c) { c.resize(); c.render(); }); }
  window.addEventListener('resize', layout);
  layout();

  // Self-check for tests and for people: ink drawn on each canvas, and that no history
  // value ran as code. Ink = pixels darker than the light lane stripes.
  function ink(canvas) {
    if (!canvas) return null;
    var d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data, n = 0;
    for (var i = 0; i < d.length; i += 16) if (d[i + 3] > 0 && d[i] + d[i + 1] + d[i + 2] < 700) n++;
    return n;
  }
  // Drive the timeline as a person would: hover the middle op, then zoom in with the wheel.
  var tl = document.getElementById('tl'), hoverOk = null, zoom = null, zoomedInk = null;
  var mid = -1;
  for (var m = OPS.length >> 1; m < OPS.length; m++) if (OPS[m][T1] >= 0) { mid = m; break; }
  if (mid >= 0) {
    var mo = OPS[mid], lines = hoverTimeline(charts[0].x((mo[T0] + mo[T1]) / 2), MT + mo[LANE] * laneH + laneH / 2);
    hoverOk = !!lines && lines[0].indexOf('history event ' + mo[IDX] + ')') >= 0;
    var r = tl.getBoundingClientRect(), span = view.t1 - view.t0;
    for (var z = 0; z < 8; z++) {
      tl.dispatchEvent(new WheelEvent('wheel', { deltaY: -100, clientX: r.left + r.width / 2, clientY: r.top + MT + 2, bubbles: true, cancelable: true }));
    }
    zoom = span / (view.t1 - view.t0);
    charts.forEach(function (c) { c.render(); });
    zoomedInk = ink(tl);
    view.t0 = full.t0; view.t1 = full.t1;
    charts.forEach(function (c) { c.render(); });
  }
  // Fault periods a person can see: those whose middle column on the throughput chart
  // carries the period's shading colour (over a transparent or a white background).
  function shadedFaults() {
    var ch = charts[2], dpr = window.devicePixelRatio || 1, n = 0;
    if (!ch) return 0;
    var g = ch.ctx, H = ch.c.height;
    M.faults.forEach(function (f) {
      var hex = /^#([0-9a-f]{6})$/i.exec(f[4]);
      if (!hex) return;
      var c = [0, 2, 4].map(function (k) { return parseInt(hex[1].substr(k, 2), 16); });
      var x = Math.round(ch.x((f[2] + f[3]) / 2) * dpr);
      if (x < 0 || x >= ch.c.width) return;
      var d = g.getImageData(x, 0, 1, H).data, hits = 0;
      for (var i = 0; i < d.length; i += 4) {
        var over = d[i + 3] > 40 && d[i + 3] < 140, blend = d[i + 3] === 255;
        var want = blend ? c.map(function (v) { return 0.35 * v + 0.65 * 255; }) : c;
        if ((over || blend) && Math.abs(d[i] - want[0]) < 10 && Math.abs(d[i + 1] - want[1]) < 10 && Math.abs(d[i + 2] - want[2]) < 10) hits++;
      }
      if (hits >= 10) n++;
    });
    return n;
  }
  var check = {
    ops: OPS.length,
    faults: M.faults.length,
    shadedFaults: shadedFaults(),
    hover: hoverOk,
    zoom: zoom,
    zoomedInk: zoomedInk,
    renderMs: Math.round(performance.now()),
    timeline: ink(document.getElementById('tl')),
    latency: ink(document.getElementById('lat')),
    throughput: ink(document.getElementById('thr')),
    locks: ink(lockCanvas),
    svg: document.querySelectorAll('svg.cx .op').length,
    verdict: document.getElementById('verdict').textContent,
    xss: typeof window.__xss,
    violations: window.__faultline.violations,
    errors: window.__faultline.errors
  };
  document.getElementById('selfcheck').textContent = JSON.stringify(check);
})();
