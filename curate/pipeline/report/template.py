"""The report page: HTML skeleton, CSS and the JavaScript that draws every chart as inline SVG.

No external resources of any kind (no fonts, no CDNs, no images): the file opens offline. All data
text is inserted with ``textContent`` (never ``innerHTML``), so rows holding markup cannot inject it.
After drawing, the page sets ``data-rendered="1"`` and ``data-charts=<number drawn>`` on ``<html>``
and records any script error in ``data-errors`` (the browser test reads them).
"""

PAGE = """<!DOCTYPE html>
<html lang="en" data-rendered="0" data-charts="0" data-errors="0">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>%%TITLE%%</title>
<style>%%CSS%%</style>
</head>
<body>
<header><h1 id="title"></h1><div id="meta"></div></header>
<nav id="toc"></nav>
<main id="main"></main>
<div id="errors" hidden></div>
<script type="application/json" id="payload">%%DATA%%</script>
<script>%%JS%%</script>
</body>
</html>
"""

CSS = r"""
:root { --kept:#2f7ed8; --dropped:#e4572e; --c3:#17a589; --c4:#8e44ad; --c5:#f1c40f; --c6:#7f8c8d;
        --bg:#fafafa; --fg:#222; --muted:#666; --line:#ddd; }
* { box-sizing: border-box; }
body { margin:0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans CJK SC", "PingFang SC", sans-serif;
       color:var(--fg); background:var(--bg); }
header { padding: 18px 28px 8px; background:#fff; border-bottom:1px solid var(--line); }
h1 { font-size: 20px; margin: 0 0 6px; }
h2 { font-size: 17px; margin: 0 0 10px; }
h3 { font-size: 14px; margin: 14px 0 6px; }
#meta { color: var(--muted); font-size: 12px; display:flex; flex-wrap:wrap; gap: 4px 18px; }
nav { position: sticky; top: 0; z-index: 2; background:#fff; border-bottom:1px solid var(--line);
      padding: 6px 28px; display:flex; flex-wrap:wrap; gap: 14px; font-size: 13px; }
nav a { color: var(--kept); text-decoration: none; }
main { padding: 10px 28px 40px; max-width: 1280px; }
section { background:#fff; border:1px solid var(--line); border-radius:6px; padding:16px 18px; margin: 14px 0; }
.cards { display:flex; flex-wrap:wrap; gap: 12px; }
.card { border:1px solid var(--line); border-radius:6px; padding:10px 14px; min-width: 130px; }
.card .v { font-size: 22px; font-weight: 600; }
.card .k { color: var(--muted); font-size: 12px; }
.lead { color: var(--muted); margin: 0 0 10px; }
.grid { display:grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 14px; }
svg { display:block; max-width:100%; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
.legend { display:flex; gap: 12px; font-size: 12px; color: var(--muted); margin: 2px 0 4px; }
.legend i { display:inline-block; width:10px; height:10px; margin-right:4px; vertical-align:-1px; border-radius:2px; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { border-bottom: 1px solid #eee; padding: 5px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; position: sticky; top: 36px; cursor: pointer; user-select: none; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.txt { max-width: 420px; white-space: pre-wrap; word-break: break-word; }
/* Browse rows: the answer is what a reviewer reads; it gets the room */
#rows-table td.answer { min-width: 30em; max-width: none; }
#rows-table td.question { min-width: 14em; max-width: 26em; }
.warn { background:#fff4d6; border:1px solid #f0d48a; border-radius:5px; padding:8px 12px; margin: 10px 0; }
.pill { display:inline-block; padding: 0 6px; border-radius: 9px; font-size: 11px; margin: 1px 2px 1px 0; background:#eef; }
.pill.kept { background:#e3efff; color:#1b4f91; } .pill.dropped { background:#fde6df; color:#9c2d10; }
.pill.flag { background:#fff4d6; color:#7a5a00; }
.ex { border-left: 3px solid var(--line); padding: 4px 10px; margin: 6px 0; color:#333; font-size: 12.5px; white-space: pre-wrap; word-break: break-word; }
.ex .d { color: var(--muted); font-size: 11.5px; }
details { margin: 4px 0; } summary { cursor: pointer; }
.controls { display:flex; flex-wrap: wrap; gap: 10px; align-items: center; margin-bottom: 8px; }
.controls input, .controls select, .controls button { font: inherit; padding: 3px 6px; }
.muted { color: var(--muted); }
.cluster { border:1px solid var(--line); border-radius:5px; margin: 8px 0; padding: 6px 10px; }
.member { font-size: 12.5px; padding: 2px 0 2px 8px; border-left: 3px solid var(--dropped); margin: 3px 0; white-space: pre-wrap; word-break: break-word; }
.member.kept { border-left-color: var(--kept); }
#errors { position: fixed; bottom: 0; left: 0; right: 0; background: #fdd; color: #900; padding: 8px 28px; font-size: 12px; }
"""

JS = r"""
(function () {
  'use strict';
  var errors = [];
  function recordError(msg) {
    errors.push(String(msg));
    document.documentElement.setAttribute('data-errors', String(errors.length));
    var box = document.getElementById('errors');
    box.hidden = false; box.textContent = 'Report script error: ' + errors.join(' | ');
  }
  window.addEventListener('error', function (e) { recordError(e.message || e); });

  var NS = 'http://www.w3.org/2000/svg';
  var COLORS = ['var(--kept)', 'var(--dropped)', 'var(--c3)', 'var(--c4)', 'var(--c5)', 'var(--c6)'];
  var charts = 0;
  var D = JSON.parse(document.getElementById('payload').textContent);

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) { if (k === 'class') e.className = attrs[k]; else e.setAttribute(k, attrs[k]); }
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs, text) {
    var e = document.createElementNS(NS, tag);
    if (attrs) for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(n) {
    if (n === null || n === undefined) return '–';
    if (typeof n === 'number') {
      if (Number.isInteger(n)) return n.toLocaleString('en-US');
      var a = Math.abs(n);
      return a >= 100 ? n.toFixed(0) : a >= 1 ? n.toFixed(2) : n.toPrecision(3);
    }
    return String(n);
  }
  function pct(a, b) { return b ? (100 * a / b).toFixed(1) + '%' : '–'; }
  function section(id, title, lead) {
    var s = el('section', {id: id});
    s.appendChild(el('h2', null, title));
    if (lead) s.appendChild(el('p', {'class': 'lead'}, lead));
    document.getElementById('main').appendChild(s);
    var a = el('a', {href: '#' + id}, title);
    document.getElementById('toc').appendChild(a);
    return s;
  }
  function legend(parent, names) {
    var l = el('div', {'class': 'legend'});
    names.forEach(function (n, i) {
      var s = el('span'); var sw = el('i'); sw.style.background = COLORS[i % COLORS.length];
      s.appendChild(sw); s.appendChild(document.createTextNode(n)); l.appendChild(s);
    });
    parent.appendChild(l);
  }
  function done(root, marks) { if (marks > 0) { charts += 1; root.setAttribute('data-marks', String(marks)); } }

  // horizontal bars: rows = [{label, values:[...], note}], series names
  function hbars(parent, rows, names, opts) {
    opts = opts || {};
    var W = opts.width || 760, labelW = opts.labelW || 230, rowH = 22, pad = 6;
    var H = rows.length * rowH + 24;
    var max = 0;
    rows.forEach(function (r) {
      var s = opts.stacked ? r.values.reduce(function (a, b) { return a + b; }, 0) : Math.max.apply(null, r.values);
      if (s > max) max = s;
    });
    if (max <= 0) max = 1;
    var root = svg('svg', {width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'class': 'chart hbars'});
    var scale = (W - labelW - 230) / max, marks = 0;
    rows.forEach(function (r, i) {
      var y = 4 + i * rowH;
      var lab = svg('text', {x: labelW - 8, y: y + rowH / 2 + 4, 'text-anchor': 'end'}, r.label.length > 38 ? r.label.slice(0, 37) + '…' : r.label);
      lab.appendChild(svg('title', null, r.label));
      root.appendChild(lab);
      var x = labelW, bh = opts.stacked ? rowH - pad : (rowH - pad) / r.values.length;
      r.values.forEach(function (v, j) {
        var w = Math.max(v > 0 ? 1 : 0, v * scale);
        var rect = svg('rect', {x: x, y: opts.stacked ? y : y + j * bh, width: w, height: bh, fill: COLORS[(opts.colorOffset || 0) + j], rx: 2});
        rect.appendChild(svg('title', null, (names[j] || '') + ': ' + fmt(v)));
        root.appendChild(rect); if (v > 0) marks++;
        if (opts.stacked) x += w;
      });
      var end = opts.stacked ? x : labelW + Math.max.apply(null, r.values) * scale;
      root.appendChild(svg('text', {x: end + 6, y: y + rowH / 2 + 4, fill: '#555'}, r.note || fmt(r.values[0])));
    });
    parent.appendChild(root); done(root, marks);
    return root;
  }

  // histogram with shared bins, several series as grouped bars
  function histogram(parent, h) {
    var names = Object.keys(h.series);
    var box = el('div');
    box.appendChild(el('h3', null, h.title));
    legend(box, names.map(function (n) { var s = h.series[n]; return n + ' (n=' + fmt(s.n) + ', median ' + fmt(s.p50) + ')'; }));
    var W = 440, H = 190, L = 44, B = 34, T = 8, R = 8;
    var nb = h.edges.length - 1, max = 1, marks = 0;
    names.forEach(function (n) { h.series[n].counts.forEach(function (c) { if (c > max) max = c; }); });
    var root = svg('svg', {width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'class': 'chart hist'});
    var bw = (W - L - R) / nb, gw = bw / Math.max(1, names.length);
    root.appendChild(svg('line', {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#999'}));
    root.appendChild(svg('line', {x1: L, y1: T, x2: L, y2: H - B, stroke: '#999'}));
    [0, 0.25, 0.5, 0.75, 1].forEach(function (f) {
      var y = H - B - f * (H - B - T);
      root.appendChild(svg('line', {x1: L - 3, y1: y, x2: L, y2: y, stroke: '#999', 'class': 'tick y'}));
      root.appendChild(svg('text', {x: L - 5, y: y + 4, 'text-anchor': 'end'}, fmt(Math.round(f * max))));
    });
    names.forEach(function (n, j) {
      // a dropped series is drawn on its own scale when it is tiny next to the kept one? no: same scale, honest
      h.series[n].counts.forEach(function (c, i) {
        if (!c) return;
        var bh = (H - B - T) * c / max;
        var rect = svg('rect', {x: L + i * bw + j * gw + 0.5, y: H - B - bh, width: Math.max(1, gw - 1), height: Math.max(1, bh), fill: COLORS[j % COLORS.length]});
        rect.appendChild(svg('title', null, n + ': ' + fmt(c) + ' in [' + fmt(h.edges[i]) + ', ' + fmt(h.edges[i + 1]) + ')'));
        root.appendChild(rect); marks++;
      });
    });
    var step = Math.max(1, Math.round(nb / 6));
    for (var ti = 0; ti <= nb; ti += step) {
      var i = ti > nb - step / 2 ? nb : ti;
      root.appendChild(svg('line', {x1: L + i * bw, y1: H - B, x2: L + i * bw, y2: H - B + 3, stroke: '#999', 'class': 'tick x'}));
      root.appendChild(svg('text', {x: L + i * bw, y: H - B + 14, 'text-anchor': i === 0 ? 'start' : i === nb ? 'end' : 'middle'}, fmt(h.edges[i])));
      if (i === nb) break;
    }
    // cut-off lines: the select thresholds on this score (keep side labelled)
    (h.cutoffs || []).forEach(function (c) {
      var e = h.edges, v = c.value, x = null;
      var f = function (t) { return h.log ? Math.log10(Math.max(t, 1e-12)) : t; };
      if (v <= e[0]) x = L; else if (v >= e[nb]) x = W - R;
      else x = L + (W - L - R) * (f(v) - f(e[0])) / (f(e[nb]) - f(e[0]));
      var ln = svg('line', {x1: x, y1: T, x2: x, y2: H - B, stroke: '#222', 'stroke-width': 1.5, 'stroke-dasharray': '4 3', 'class': 'cutoff'});
      ln.appendChild(svg('title', null, c.label));
      root.appendChild(ln);
      root.appendChild(svg('text', {x: Math.min(x + 3, W - R - 2), y: T + 10, 'text-anchor': x > W - 90 ? 'end' : 'start', 'class': 'cutoff-label'}, c.label));
    });
    box.appendChild(root); parent.appendChild(box); done(root, marks);
  }

  // one stacked 100% bar per group: {group: {category: count}}
  function mix(parent, groups) {
    var cats = [];
    Object.keys(groups).forEach(function (g) { Object.keys(groups[g]).forEach(function (c) { if (cats.indexOf(c) < 0) cats.push(c); }); });
    var W = 760, rowH = 30, L = 130, H = Object.keys(groups).length * rowH + 10, marks = 0;
    legend(parent, cats);
    var root = svg('svg', {width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'class': 'chart mix'});
    Object.keys(groups).forEach(function (g, i) {
      var tot = 0; cats.forEach(function (c) { tot += groups[g][c] || 0; });
      var y = 4 + i * rowH, x = L;
      root.appendChild(svg('text', {x: L - 8, y: y + 16, 'text-anchor': 'end'}, g + ' (' + fmt(tot) + ')'));
      cats.forEach(function (c, j) {
        var v = groups[g][c] || 0; if (!v || !tot) return;
        var w = (W - L - 10) * v / tot;
        var r = svg('rect', {x: x, y: y, width: w, height: rowH - 8, fill: COLORS[j % COLORS.length]});
        r.appendChild(svg('title', null, c + ': ' + fmt(v) + ' (' + pct(v, tot) + ')'));
        root.appendChild(r); marks++;
        if (w > 60) root.appendChild(svg('text', {x: x + 4, y: y + 15, fill: '#fff'}, c + ' ' + pct(v, tot)));
        x += w;
      });
    });
    parent.appendChild(root); done(root, marks);
  }

  function cards(parent, items) {
    var c = el('div', {'class': 'cards'});
    items.forEach(function (it) {
      var d = el('div', {'class': 'card'}); d.appendChild(el('div', {'class': 'v'}, fmt(it[1]))); d.appendChild(el('div', {'class': 'k'}, it[0]));
      c.appendChild(d);
    });
    parent.appendChild(c);
  }

  // ---------------------------------------------------------------- page
  document.getElementById('title').textContent = D.title || 'tamis report';
  var meta = document.getElementById('meta');
  Object.keys(D.meta || {}).forEach(function (k) {
    if (D.meta[k] === null || D.meta[k] === undefined) return;
    meta.appendChild(el('span', null, k + ': ' + D.meta[k]));
  });

  var S = D.summary;
  var sec = section('summary', 'Summary', 'Every input row is accounted for: input = kept + dropped + rejected (− added variants).');
  var summaryCards = [['input rows', S.input], ['kept', S.kept], ['dropped', S.dropped], ['rejected (unreadable)', S.rejected], ['added (variants)', S.added], ['kept share', S.input ? pct(S.kept, S.input) : '–']];
  if (D.split) { summaryCards.push(['train rows', D.split.train]); summaryCards.push(['eval rows (held out)', D.split.eval]); }
  cards(sec, summaryCards);
  if (D.demo_scores && D.demo_scores.length) {
    sec.appendChild(el('div', {'class': 'warn', id: 'demo-warning'}, 'Demo scores: ' + D.demo_scores.join(', ') + ' came from the shipped demo models (samples/models), which are for the samples and tests only; select ignored them for its defaults. Pass real models to `curate score` (--lm, --reward-model, --quality-model).'));
  }
  // what happened, in words: one line per stage that removed or added rows
  var story = el('ul');
  if (S.rejected) story.appendChild(el('li', null, fmt(S.rejected) + ' input rows could not be read (listed under "Dropped", with file, line and reason).'));
  (D.funnel || []).forEach(function (f) {
    var mine = D.drops.filter(function (d) { return d.stage === f.stage; });
    if (f.dropped) {
      var parts = mine.slice(0, 4).map(function (d) { return fmt(d.count) + ' ' + d.reason; });
      if (mine.length > 4) parts.push(fmt(mine.slice(4).reduce(function (a, d) { return a + d.count; }, 0)) + ' for ' + (mine.length - 4) + ' other reasons');
      story.appendChild(el('li', null, f.stage + ' removed ' + fmt(f.dropped) + ' of ' + fmt(f['in']) + ' rows (' + pct(f.dropped, f['in']) + ')' + (parts.length ? ': ' + parts.join(', ') : '') + '.'));
    }
    if (f.added) story.appendChild(el('li', null, f.stage + ' added ' + fmt(f.added) + ' rows (variants).'));
  });
  if (D.top_drop) {
    var td0 = D.top_drop;
    var how = td0.disable ? ' To keep these rows: ' + td0.disable + ' (recipe: ' + td0.disable_recipe + ').' : '';
    story.appendChild(el('li', {id: 'top-drop'}, 'Most rows were dropped by ' + td0.stage + ' · ' + td0.reason + ': ' + fmt(td0.count) + ' (' + pct(td0.count, S.input) + ' of the input).' + how));
  }
  if (!story.firstChild) story.appendChild(el('li', null, 'No row was dropped or rejected.'));
  sec.appendChild(el('h3', null, 'What happened'));
  sec.appendChild(story);

  // funnel
  if (D.funnel && D.funnel.length) {
    sec = section('funnel', 'Funnel', 'Rows entering and leaving each stage, in order. Blue: kept; red: dropped; green: rejected (unreadable input rows).');
    legend(sec, ['kept', 'dropped', 'rejected']);
    hbars(sec, D.funnel.map(function (f) {
      var note = fmt(f['in']) + ' → ' + fmt(f.kept) + (f.dropped ? '  (−' + fmt(f.dropped) + ')' : '') + (f.rejected ? '  (' + fmt(f.rejected) + ' rejected)' : '') + (f.added ? '  (+' + fmt(f.added) + ')' : '') + (f.cached ? '  cached' : '');
      return {label: f.stage, values: [f.kept, f.dropped, f.rejected], note: note};
    }), ['kept', 'dropped', 'rejected'], {stacked: true});
    var t = el('table'); var hr = el('tr');
    ['stage', 'in', 'kept', 'dropped', 'rejected', 'added', 'seconds'].forEach(function (h) { hr.appendChild(el('th', null, h)); });
    t.appendChild(hr);
    D.funnel.forEach(function (f) {
      var tr = el('tr'); tr.appendChild(el('td', null, f.stage));
      ['in', 'kept', 'dropped', 'rejected', 'added', 'seconds'].forEach(function (k) {
        var v = k === 'seconds' ? (f[k] === null || f[k] === undefined ? '–' : Number(f[k]).toFixed(2)) : fmt(f[k]);
        tr.appendChild(el('td', {'class': 'num'}, v));
      });
      t.appendChild(tr);
    });
    sec.appendChild(t);
  }

  // per input file: which file lost what
  if (D.sources && D.sources.length) {
    sec = section('sources', 'Per input file', 'Where each file\'s rows went: kept, dropped (by stage) and rejected (unreadable).');
    legend(sec, ['kept', 'dropped', 'rejected']);
    hbars(sec, D.sources.map(function (f) {
      return {label: f.file, values: [f.kept, f.dropped, f.rejected], note: fmt(f.input) + ' → ' + fmt(f.kept) + ' kept (' + pct(f.kept, f.input) + ')'};
    }), ['kept', 'dropped', 'rejected'], {stacked: true, labelW: 260});
    var stagesSeen = [];
    D.sources.forEach(function (f) { Object.keys(f.by_stage).forEach(function (k) { if (stagesSeen.indexOf(k) < 0) stagesSeen.push(k); }); });
    var ts = el('table', {id: 'sources-table'}); var th0 = el('tr');
    ['file', 'input', 'rejected'].concat(stagesSeen.map(function (k) { return 'dropped: ' + k; })).concat(['kept', 'kept share']).forEach(function (h) { th0.appendChild(el('th', null, h)); });
    ts.appendChild(th0);
    D.sources.forEach(function (f) {
      var tr = el('tr'); tr.appendChild(el('td', null, f.file));
      [f.input, f.rejected].concat(stagesSeen.map(function (k) { return f.by_stage[k] || 0; })).concat([f.kept]).forEach(function (v) { tr.appendChild(el('td', {'class': 'num'}, fmt(v))); });
      tr.appendChild(el('td', {'class': 'num'}, pct(f.kept, f.input)));
      ts.appendChild(tr);
    });
    sec.appendChild(ts);
  }

  // drops by rule
  sec = section('drops', 'Dropped: by stage and reason', D.drops.length ? 'Each bar is one rule or reason; open it to see examples of the rows it removed and why.' : 'No row was dropped.');
  if (D.drops.length) {
    hbars(sec, D.drops.map(function (d) { return {label: d.stage + ' · ' + d.reason, values: [d.count], note: fmt(d.count) + ' (' + pct(d.count, S.dropped) + ' of drops)'}; }), ['rows'], {colorOffset: 1});
    D.drops.forEach(function (d) {
      var det = el('details'); det.appendChild(el('summary', null, d.stage + ' · ' + d.reason + ' — ' + fmt(d.count) + ' rows'));
      d.examples.forEach(function (x) {
        var ex = el('div', {'class': 'ex'});
        ex.appendChild(el('div', null, 'Q: ' + (x.question || '')));
        if (x.answer) ex.appendChild(el('div', null, 'A: ' + x.answer));
        if (x.detail) ex.appendChild(el('div', {'class': 'd'}, 'why: ' + x.detail));
        ex.appendChild(el('div', {'class': 'd'}, 'id ' + x.id));
        det.appendChild(ex);
      });
      sec.appendChild(det);
    });
  }
  if (D.rejects && D.rejects.length) {
    var det = el('details'); det.appendChild(el('summary', null, 'Unreadable input rows (rejected): ' + fmt(S.rejected)));
    D.rejects.forEach(function (r) { det.appendChild(el('div', {'class': 'ex'}, r.file + ':' + r.line + (r.field ? ' [' + r.field + ']' : '') + ' — ' + r.reason)); });
    sec.appendChild(det);
  }

  // clusters
  if (D.clusters && D.clusters.length) {
    sec = section('clusters', 'Duplicate clusters', 'The largest clusters: the blue row was kept, red rows were dropped as its duplicates (similarity to the kept row).');
    hbars(sec, D.clusters.slice(0, 15).map(function (c) { return {label: String(c.cluster), values: [c.size], note: fmt(c.size) + ' rows' + (c.survivor ? ', kept ' + c.survivor : '')}; }), ['size'], {colorOffset: 2});
    var more = null;
    D.clusters.forEach(function (c, ci) {
      var box = el('div', {'class': 'cluster'});
      if (ci === 5) { more = el('details'); more.appendChild(el('summary', null, (D.clusters.length - 5) + ' more clusters')); sec.appendChild(more); }
      box.appendChild(el('div', {'class': 'muted'}, c.cluster + (c.survivor ? ' (kept ' + c.survivor + ')' : '') + ' · ' + (c.method || '') + ' · ' + c.size + ' rows' + (c.min_similarity !== undefined && c.min_similarity !== null ? ' · min similarity ' + fmt(c.min_similarity) : '')));
      c.members.forEach(function (m) {
        box.appendChild(el('div', {'class': 'member' + (m.kept ? ' kept' : '')}, (m.kept ? 'kept  ' : 'dropped  ') + (m.similarity !== null && m.similarity !== undefined ? '[' + fmt(m.similarity) + ']  ' : '') + (m.text || '') + (m.source ? '   — ' + m.source : '')));
      });
      (more || sec).appendChild(box);
    });
  }

  // distributions
  var P = D.profile;
  sec = section('distributions', 'Lengths and scores', 'Histograms of the kept rows (blue) against the dropped rows (red), on shared bins.');
  var grid = el('div', {'class': 'grid'}); sec.appendChild(grid);
  P.histograms.forEach(function (h) { histogram(grid, h); });
  if (!P.histograms.length) sec.appendChild(el('p', {'class': 'muted'}, 'No rows to plot.'));

  sec = section('languages', 'Language mix', 'Script-based language of the question (zh / en / mixed / other).');
  var groups = {}; if (Object.keys(P.languages.kept).length) groups.kept = P.languages.kept;
  if (Object.keys(P.languages.dropped || {}).length) groups.dropped = P.languages.dropped;
  if (Object.keys(groups).length) mix(sec, groups); else sec.appendChild(el('p', {'class': 'muted'}, 'No rows.'));

  // versions
  if (D.versions && D.versions.length) {
    sec = section('versions', 'Dataset versions', 'Each refresh adds a version; rows added, removed and changed, and why.');
    hbars(sec, D.versions.map(function (v) { return {label: v.version + ' ' + (v.created || ''), values: [v.rows], note: fmt(v.rows) + ' rows (+' + fmt(v.added) + ' / −' + fmt(v.removed) + ' / ~' + fmt(v.changed) + ')'}; }), ['rows']);
    var vt = el('table'); var vh = el('tr');
    ['version', 'created', 'rows', 'new input rows', 'added', 'removed', 'changed', 'new rows dropped', 'why'].forEach(function (h) { vh.appendChild(el('th', null, h)); });
    vt.appendChild(vh);
    D.versions.forEach(function (v) {
      var tr = el('tr');
      [v.version, v.created, v.rows, v.new_rows, v.added, v.removed, v.changed, v.new_dropped].forEach(function (x, i) { tr.appendChild(el('td', {'class': i > 1 ? 'num' : ''}, fmt(x))); });
      var why = [];
      Object.keys(v.added_why || {}).forEach(function (k) { why.push('+' + v.added_why[k] + ' ' + k); });
      Object.keys(v.removed_why || {}).forEach(function (k) { why.push('−' + v.removed_why[k] + ' ' + k); });
      Object.keys(v.dropped_why || {}).forEach(function (k) { why.push('dropped ' + v.dropped_why[k] + ' ' + k); });
      tr.appendChild(el('td', {'class': 'txt'}, why.join('\n')));
      vt.appendChild(tr);
    });
    sec.appendChild(vt);
  }
  if (D.compare) {
    var C = D.compare;
    sec = section('compare', 'Before / after: ' + C.before + ' → ' + C.after, 'The previous version (blue) against the current one (red).');
    cards(sec, [[C.before + ' rows', C.rows[C.before]], [C.after + ' rows', C.rows[C.after]]]);
    mix(sec, C.languages);
    var g2 = el('div', {'class': 'grid'}); sec.appendChild(g2);
    C.histograms.forEach(function (h) { histogram(g2, h); });
  }

  // rows table
  sec = section('rows', 'Browse rows', 'A sample of kept and dropped rows (every drop reason represented). Click a header to sort; type to search.');
  var controls = el('div', {'class': 'controls'}); sec.appendChild(controls);
  var q = el('input', {type: 'search', placeholder: 'search text, id, reason, flag…', size: '36'}); controls.appendChild(q);
  var st = el('select'); ['all', 'kept', 'dropped'].forEach(function (o) { st.appendChild(el('option', {value: o}, o)); }); controls.appendChild(st);
  var info = el('span', {'class': 'muted'}); controls.appendChild(info);
  var prev = el('button', null, '‹ prev'), next = el('button', null, 'next ›'); controls.appendChild(prev); controls.appendChild(next);
  var scoreCols = P.scores || [];
  var cols = ['status', 'id', 'lang', 'question', 'answer'].concat(scoreCols).concat(['flags', 'reason']);
  var table = el('table', {id: 'rows-table'}); sec.appendChild(table);
  var thead = el('tr'); table.appendChild(thead);
  var sortCol = null, sortDir = 1, page = 0, PAGE = 25;
  function value(r, c) {
    if (scoreCols.indexOf(c) >= 0) return r.scores ? r.scores[c] : null;
    if (c === 'flags') return (r.flags || []).join(' ');
    if (c === 'reason') return r.stage ? r.stage + ': ' + (r.reason || '') : '';
    return r[c];
  }
  cols.forEach(function (c) {
    var th = el('th', null, c);
    th.addEventListener('click', function () { sortDir = sortCol === c ? -sortDir : 1; sortCol = c; page = 0; draw(); });
    thead.appendChild(th);
  });
  var body = el('tbody'); table.appendChild(body);
  function filtered() {
    var needle = q.value.trim().toLowerCase(), want = st.value;
    var rows = D.rows.filter(function (r) {
      if (want !== 'all' && r.status !== want) return false;
      if (!needle) return true;
      var hay = [r.id, r.question, r.answer, r.reason, r.stage, r.detail, (r.flags || []).join(' '), r.source].join(' ').toLowerCase();
      return hay.indexOf(needle) >= 0;
    });
    if (sortCol) rows.sort(function (a, b) {
      var x = value(a, sortCol), y = value(b, sortCol);
      if (x === null || x === undefined) return 1; if (y === null || y === undefined) return -1;
      return (x < y ? -1 : x > y ? 1 : 0) * sortDir;
    });
    return rows;
  }
  function draw() {
    var rows = filtered();
    var pages = Math.max(1, Math.ceil(rows.length / PAGE));
    if (page >= pages) page = pages - 1;
    info.textContent = fmt(rows.length) + ' of ' + fmt(D.rows.length) + ' sample rows · page ' + (page + 1) + '/' + pages;
    while (body.firstChild) body.removeChild(body.firstChild);
    rows.slice(page * PAGE, page * PAGE + PAGE).forEach(function (r) {
      var tr = el('tr');
      cols.forEach(function (c) {
        var td;
        if (c === 'status') { td = el('td'); td.appendChild(el('span', {'class': 'pill ' + r.status}, r.status)); }
        else if (c === 'flags') { td = el('td'); (r.flags || []).forEach(function (f) { td.appendChild(el('span', {'class': 'pill flag'}, f)); }); }
        else if (c === 'reason') { td = el('td', {'class': 'txt'}, value(r, c)); if (r.detail) td.title = r.detail; }
        else if (scoreCols.indexOf(c) >= 0) td = el('td', {'class': 'num'}, fmt(value(r, c)));
        else if (c === 'id') { td = el('td', null, r.id); if (r.source) td.title = r.source; }
        else td = el('td', {'class': c === 'question' || c === 'answer' ? 'txt ' + c : ''}, r[c] === null || r[c] === undefined ? '' : r[c]);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }
  q.addEventListener('input', function () { page = 0; draw(); });
  st.addEventListener('change', function () { page = 0; draw(); });
  prev.addEventListener('click', function () { if (page > 0) { page--; draw(); } });
  next.addEventListener('click', function () { page++; draw(); });
  draw();
  // the width the answer column got (the browser test reads it)
  var ans = body.querySelector('td.answer');
  document.documentElement.setAttribute('data-answer-px', ans ? String(Math.round(ans.getBoundingClientRect().width)) : '0');

  document.documentElement.setAttribute('data-charts', String(charts));
  document.documentElement.setAttribute('data-rendered', errors.length ? 'error' : '1');
})();
"""
