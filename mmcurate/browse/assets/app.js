/* mmcurate browse: the page's logic.
 *
 * A classic script (Chromium does not load ES modules from file:// pages), with no library.
 * data/index.js calls MMB.index(...) with a compact per-sample index; card details come in
 * data/chunks/cK.js files, each calling MMB.chunk(K, rows), added as <script> tags when a page
 * of cards needs them (file:// pages cannot fetch() local files). Every string from the data
 * is put into the page with textContent or setAttribute, never parsed as HTML.
 */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"];
  var TYPES = { u1: Uint8Array, u2: Uint16Array };
  var NONE8 = 255, NONE16 = 65535;

  var M = (window.MMB = { chunks: {}, pending: {}, chunkRequests: 0, renders: 0 });
  var ix = null, C = null, F = {};
  var st = { cls: -1, split: -1, bin: -1, pref: -1, sel: null, sort: "asc", page: 0, q: "", match: null };
  var marked = {}, markedCount = 0;
  var token = 0;
  var current = [];

  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function sv(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(x, digits) {
    return x === null || x === undefined ? "n/a" : Number(x).toFixed(digits === undefined ? 3 : digits);
  }
  function signed(x) { return x === null || x === undefined ? "n/a" : (x > 0 ? "+" : "") + Number(x).toFixed(3); }

  M.fail = function (message) {
    document.body.dataset.state = "error";
    var box = $("cards");
    box.textContent = "";
    box.appendChild(el("p", { "class": "error" }, message));
  };

  M.chunk = function (k, rows) {
    M.chunks[k] = rows;
    var p = M.pending[k];
    if (p) { delete M.pending[k]; p.resolve(); }
  };

  function loadChunk(k) {
    if (M.chunks[k]) return Promise.resolve();
    if (M.pending[k]) return M.pending[k].promise;
    var entry = {};
    entry.promise = new Promise(function (resolve, reject) { entry.resolve = resolve; entry.reject = reject; });
    M.pending[k] = entry;
    var src = "data/chunks/c" + k + ".js";
    var s = el("script", { src: src });
    s.onerror = function () {
      delete M.pending[k];
      entry.reject(new Error(src + " could not be loaded: rebuild the site"));
    };
    M.chunkRequests += 1;
    document.head.appendChild(s);
    return entry.promise;
  }

  // sample ids in index order, read on the first search only (the opening page stays small)
  var idsLoad = null;
  M.ids = function (list) { M.idList = list; if (idsLoad) idsLoad.resolve(); };
  function loadIds() {
    if (M.idList) return Promise.resolve();
    if (idsLoad) return idsLoad.promise;
    idsLoad = {};
    idsLoad.promise = new Promise(function (resolve, reject) { idsLoad.resolve = resolve; idsLoad.reject = reject; });
    var s = el("script", { src: "data/ids.js" });
    s.onerror = function () { idsLoad.reject(new Error("data/ids.js could not be loaded: rebuild the site")); };
    document.head.appendChild(s);
    return idsLoad.promise;
  }
  function search(text) {
    st.q = text.trim().toLowerCase();
    st.page = 0;
    if (!st.q) { st.match = null; update(); return; }
    loadIds().then(function () {
      var q = st.q, m = new Uint8Array(ix.n);
      for (var i = 0; i < ix.n; i++) m[i] = M.idList[i].toLowerCase().indexOf(q) >= 0 ? 1 : 0;
      st.match = m;
      update();
    }, function (err) { M.fail(err.message); });
  }

  function decodeColumn(col) {
    var bin = atob(col.data), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new TYPES[col.dtype](bytes.buffer);
  }

  M.index = function (data) {
    ix = data;
    C = {};
    for (var name in data.columns) C[name] = decodeColumn(data.columns[name]);
    data.fields.forEach(function (f, j) { F[f] = j; });
    setup();
    update();
  };

  // ---- filtering -----------------------------------------------------------------------------

  function passes(i, skipClass, skipPref) {
    if (!skipClass && st.cls >= 0 && C.label[i] !== st.cls) return false;
    if (st.split >= 0 && C.split[i] !== st.split) return false;
    if (C.bin && st.bin >= 0 && C.bin[i] !== st.bin) return false;
    if (!skipPref && C.pref && st.pref >= 0 && C.pref[i] !== st.pref) return false;
    if (st.q && st.match && !st.match[i]) return false;
    return true;
  }
  function inSelection(i) {
    if (!st.sel) return true;
    return st.sel.kind === "hist" ? C.hist[i] === st.sel.k : C.cell[i] === st.sel.k;
  }

  function update() {
    var n = ix.n, base = [], hist = null, cells = null, i;
    if (ix.has_scores) {
      hist = new Array(ix.hist_edges.length - 1).fill(0);
      cells = new Array(ix.grid * ix.grid).fill(0);
    }
    for (i = 0; i < n; i++) {
      if (!passes(i, false, false)) continue;
      base.push(i);
      if (hist && C.hist[i] !== NONE8) hist[C.hist[i]] += 1;
      if (cells && C.cell[i] !== NONE16) cells[C.cell[i]] += 1;
    }
    var chosen = st.sel ? base.filter(inSelection) : base;
    if (st.sort === "desc") chosen = chosen.slice().reverse();
    current = chosen;
    var pages = Math.max(1, Math.ceil(chosen.length / ix.page_size));
    if (st.page >= pages) st.page = pages - 1;
    if (hist) { drawDensity(cells); drawHist(hist); }
    drawClasses();
    syncControls(pages);
    renderCards();
  }

  // ---- plots ---------------------------------------------------------------------------------

  function color(v, max) {
    var t = max <= 1 ? 1 : (v - 1) / (max - 1), x = t * (VIRIDIS.length - 1);
    var k = Math.min(VIRIDIS.length - 2, Math.floor(x));
    return mix(VIRIDIS[k], VIRIDIS[k + 1], x - k);
  }
  function mix(a, b, t) {
    var out = "#";
    for (var j = 1; j < 7; j += 2) {
      var v = Math.round(parseInt(a.substr(j, 2), 16) * (1 - t) + parseInt(b.substr(j, 2), 16) * t);
      out += (v < 16 ? "0" : "") + v.toString(16);
    }
    return out;
  }

  function drawDensity(cells) {
    // every label sits outside the plotted square: above it, left of it, or below the axis
    var svg = $("density"), G = ix.grid, L = 44, T = 26, S = 300, B = 70, cs = S / G;
    svg.textContent = "";
    svg.setAttribute("width", L + S + 12);
    svg.setAttribute("height", T + S + B);
    svg.appendChild(sv("rect", { x: L, y: T, width: S, height: S, fill: "#fff", stroke: "#999", "class": "frame" }));
    var max = 0;
    cells.forEach(function (v) { if (v > max) max = v; });
    for (var cx = 0; cx < G; cx++) {
      for (var cy = 0; cy < G; cy++) {
        var k = cx * G + cy, v = cells[k];
        var chosen = st.sel && st.sel.kind === "cell" && st.sel.k === k;
        if (!v && !chosen) continue;
        var r = sv("rect", {
          x: (L + cx * cs).toFixed(2), y: (T + S - (cy + 1) * cs).toFixed(2),
          width: cs.toFixed(2), height: cs.toFixed(2),
          fill: v ? color(v, max) : "none", "class": "hit" + (chosen ? " chosen" : ""), "data-cell": cx + "," + cy,
        });
        r.appendChild(sv("title", {}, "p_visual " + fmt(cx / G, 2) + "\u2013" + fmt((cx + 1) / G, 2) + ", p_audio " +
          fmt(cy / G, 2) + "\u2013" + fmt((cy + 1) / G, 2) + ": " + v + " samples"));
        r.addEventListener("click", select.bind(null, "cell", k));
        svg.appendChild(r);
      }
    }
    svg.appendChild(sv("line", { x1: L, y1: T + S, x2: L + S, y2: T, stroke: "#555", "stroke-dasharray": "5,4",
      "pointer-events": "none" }));
    svg.appendChild(sv("text", { x: L, y: T - 8, "class": "label" }, "\u2196 audio-preferred"));
    svg.appendChild(sv("text", { x: L + S, y: T - 8, "text-anchor": "end", "class": "label" },
      "visual-preferred \u2198"));
    for (var t = 0; t <= 4; t++) {
      var f = t / 4;
      svg.appendChild(sv("text", { x: L + f * S, y: T + S + 14, "text-anchor": "middle" }, f.toFixed(2)));
      svg.appendChild(sv("text", { x: L - 4, y: T + S - f * S + 4, "text-anchor": "end" }, f.toFixed(2)));
    }
    svg.appendChild(sv("text", { x: L + S / 2, y: T + S + 30, "text-anchor": "middle" },
      "visual confidence p_visual"));
    var mid = T + S / 2;
    svg.appendChild(sv("text", { x: 12, y: mid, "text-anchor": "middle", transform: "rotate(-90 12 " + mid + ")" },
      "audio confidence p_audio"));
    // the colour legend: samples per cell, darkest = 1, brightest = the fullest cell
    var legend = sv("g", { id: "density-legend", "class": "legend" }), ly = T + S + 44, steps = 9, w = 14;
    legend.appendChild(sv("text", { x: L, y: ly + 10 }, "samples per cell:"));
    var x0 = L + 112;
    legend.appendChild(sv("text", { x: x0 - 4, y: ly + 10, "text-anchor": "end" }, max ? 1 : 0));
    for (var j = 0; j < steps; j++) {
      var value = max <= 1 ? 1 : 1 + (max - 1) * j / (steps - 1);
      legend.appendChild(sv("rect", { x: x0 + j * w, y: ly, width: w, height: 12, fill: color(value, Math.max(1, max)),
        "data-legend": Math.round(value) }));
    }
    legend.appendChild(sv("text", { x: x0 + steps * w + 4, y: ly + 10 }, max));
    svg.appendChild(legend);
  }

  function drawHist(hist) {
    // with a balanced set the bars are its own bins (edges drawn dashed); else equal-width bars over [-1, 1]
    var svg = $("hist"), e = ix.hist_edges, L = 44, T = 10, W = 420, H = 250, B = 70;
    svg.textContent = "";
    svg.setAttribute("width", L + W + 12);
    svg.setAttribute("height", T + H + B);
    var max = Math.max.apply(null, hist.concat([1]));
    var xs = function (v) { return L + (v - e[0]) / (e[e.length - 1] - e[0]) * W; };
    svg.appendChild(sv("rect", { x: L, y: T, width: W, height: H, fill: "#fff", stroke: "#999", "class": "frame" }));
    hist.forEach(function (v, k) {
      var x0 = xs(e[k]), x1 = xs(e[k + 1]), h = v / max * (H - 6);
      var chosen = st.sel && st.sel.kind === "hist" && st.sel.k === k;
      var r = sv("rect", {
        x: (x0 + 0.5).toFixed(2), y: (T + H - h).toFixed(2),
        width: Math.max(1, x1 - x0 - 1).toFixed(2), height: h.toFixed(2),
        fill: "#4c72b0", "class": "hit" + (chosen ? " chosen" : ""), "data-bin": k,
      });
      r.appendChild(sv("title", {}, "d in [" + fmt(e[k], 2) + ", " + fmt(e[k + 1], 2) +
        (k === hist.length - 1 ? "]" : ")") + ": " + v + " samples"));
      r.addEventListener("click", select.bind(null, "hist", k));
      svg.appendChild(r);
      // a full-height transparent target so that short bars are easy to click
      var hit = sv("rect", { x: x0.toFixed(2), y: T, width: (x1 - x0).toFixed(2), height: H - h, fill: "transparent",
        "class": "hit-bg" });
      hit.addEventListener("click", select.bind(null, "hist", k));
      svg.appendChild(hit);
    });
    if (ix.hist_from_balance) {
      e.forEach(function (v, k) {
        if (k === 0 || k === e.length - 1) return;
        svg.appendChild(sv("line", { x1: xs(v), y1: T, x2: xs(v), y2: T + H, stroke: "#c44e52",
          "stroke-dasharray": "4,3", "class": "edge", "data-edge": v, "pointer-events": "none" }));
      });
    } else {
      svg.appendChild(sv("line", { x1: xs(0), y1: T, x2: xs(0), y2: T + H, stroke: "#888",
        "stroke-dasharray": "4,3", "pointer-events": "none" }));
    }
    var ticks = ix.hist_from_balance ? e : [-1, -0.5, 0, 0.5, 1], last = -1e9;
    ticks.forEach(function (v) {
      var x = xs(v);
      if (x - last < 30) return;  // tick labels never overlap each other
      last = x;
      svg.appendChild(sv("text", { x: x, y: T + H + 14, "text-anchor": "middle", "class": "tick" },
        Number(Number(v).toFixed(2))));
    });
    svg.appendChild(sv("text", { x: L - 4, y: T + 10, "text-anchor": "end" }, max));
    svg.appendChild(sv("text", { x: L - 4, y: T + H, "text-anchor": "end" }, 0));
    svg.appendChild(sv("text", { x: L + W / 2, y: T + H + 30, "text-anchor": "middle" },
      "discrepancy d = p_audio \u2212 p_visual"));
    var legend = sv("g", { id: "hist-legend", "class": "legend" }), ly = T + H + 44;
    legend.appendChild(sv("rect", { x: L, y: ly, width: 12, height: 12, fill: "#4c72b0" }));
    legend.appendChild(sv("text", { x: L + 16, y: ly + 10 },
      ix.hist_from_balance ? "samples per balance bin" : "samples per bar"));
    if (ix.hist_from_balance) {
      legend.appendChild(sv("line", { x1: L + 190, y1: ly + 6, x2: L + 210, y2: ly + 6, stroke: "#c44e52",
        "stroke-dasharray": "4,3" }));
      legend.appendChild(sv("text", { x: L + 214, y: ly + 10 }, "bin edge"));
    }
    svg.appendChild(legend);
  }

  function select(kind, k) {
    st.sel = st.sel && st.sel.kind === kind && st.sel.k === k ? null : { kind: kind, k: k };
    st.page = 0;
    update();
  }

  function drawClasses() {
    var head = $("classes").tHead, body = $("classes").tBodies[0], nc = ix.classes.length;
    var count = new Array(nc).fill(0), audio = new Array(nc).fill(0);
    for (var i = 0; i < ix.n; i++) {
      if (!passes(i, true, true)) continue;
      count[C.label[i]] += 1;
      if (C.pref && C.pref[i] === 2) audio[C.label[i]] += 1;
    }
    head.textContent = "";
    body.textContent = "";
    var hr = el("tr");
    var heads = ["class", "samples"].concat(ix.has_scores ? ["audio-preferred", "share audio-preferred"] : []);
    heads.forEach(function (h) { hr.appendChild(el("th", {}, h)); });
    head.appendChild(hr);
    var rows = [];
    for (var c = 0; c < nc; c++) if (count[c]) rows.push(c);
    if (ix.has_scores) rows.sort(function (a, b) { return audio[b] / count[b] - audio[a] / count[a] || a - b; });
    rows.forEach(function (c) {
      var tr = el("tr", { "data-class": c, "class": st.cls === c ? "chosen" : "" });
      tr.appendChild(el("td", {}, ix.classes[c]));
      tr.appendChild(el("td", {}, count[c]));
      if (ix.has_scores) {
        var share = audio[c] / count[c];
        tr.appendChild(el("td", {}, audio[c]));
        var td = el("td", { "data-share": share.toFixed(6) });
        var bg = el("span", { "class": "bar-bg" });
        bg.appendChild(el("span", { "class": "bar", style: "width:" + (share * 100).toFixed(1) + "%" }));
        td.appendChild(bg);
        td.appendChild(document.createTextNode((share * 100).toFixed(1) + "%"));
        tr.appendChild(td);
      }
      tr.addEventListener("click", function () { st.cls = st.cls === c ? -1 : c; st.page = 0; update(); });
      body.appendChild(tr);
    });
  }

  // ---- controls ------------------------------------------------------------------------------

  function fillSelect(sel, options) {
    sel.textContent = "";
    options.forEach(function (o) { sel.appendChild(el("option", { value: o[0] }, o[1])); });
  }

  function setup() {
    $("title").textContent = ix.title;
    document.title = ix.title + " \u2014 mmcurate browse";
    var kinds = { ingest: "ingest folder (no scores)", scored: "scored ingest folder", balanced: "balanced dataset" };
    $("subtitle").textContent = kinds[ix.kind] + " \u00b7 " + ix.n + " samples \u00b7 " + ix.folder +
      (ix.scorer_id ? " \u00b7 scorer " + ix.scorer_id : "");
    $("notes").textContent = ix.notes.join("; ");
    $("health").textContent = ix.health || "";
    (ix.links || []).forEach(function (l) { $("links").appendChild(el("a", { href: l.href }, l.text)); });
    var typing = null;
    $("f-search").addEventListener("input", function (ev) {
      clearTimeout(typing);
      typing = setTimeout(function () { search(ev.target.value); }, 150);
    });
    $("export-marked").addEventListener("click", exportMarked);
    $("clear-marked").addEventListener("click", function () { marked = {}; markedCount = 0; syncMarks(); update(); });
    $("plots").hidden = !ix.has_scores;
    $("class-heading").textContent = ix.has_scores ?
      "Per class: share of audio-preferred samples (click a row to filter)" : "Per class (click a row to filter)";
    var counts = new Array(ix.classes.length).fill(0);
    for (var i = 0; i < ix.n; i++) counts[C.label[i]] += 1;
    var classOptions = ix.classes.map(function (c, k) { return [k, c + " (" + counts[k] + ")"]; })
      .filter(function (o) { return counts[o[0]] > 0; });
    fillSelect($("f-class"), [[-1, "all classes"]].concat(classOptions));
    fillSelect($("f-split"), [[-1, "all splits"]].concat(ix.splits.map(function (s, k) { return [k, s]; })));
    $("l-bin").hidden = !C.bin;
    if (C.bin) {
      fillSelect($("f-bin"), [[-1, "all bins"]].concat(ix.bins.map(function (b, k) { return [k, k + ": " + b]; })));
    }
    $("l-pref").hidden = !ix.has_scores;
    $("l-sort").hidden = !ix.has_scores;
    if (ix.has_scores) {
      fillSelect($("f-pref"), [[-1, "any"]].concat(ix.preferred.map(function (p, k) { return [k, p]; })));
      fillSelect($("f-sort"), [["asc", "d ascending (visual-preferred first)"],
        ["desc", "d descending (audio-preferred first)"]]);
    }
    [["f-class", "cls"], ["f-split", "split"], ["f-bin", "bin"], ["f-pref", "pref"]].forEach(function (p) {
      $(p[0]).addEventListener("change", function (ev) { st[p[1]] = Number(ev.target.value); st.page = 0; update(); });
    });
    $("f-sort").addEventListener("change", function (ev) { st.sort = ev.target.value; st.page = 0; update(); });
    $("clear-selection").addEventListener("click", function () { st.sel = null; st.page = 0; update(); });
    $("prev").addEventListener("click", function () { if (st.page > 0) { st.page -= 1; update(); } });
    $("next").addEventListener("click", function () { st.page += 1; update(); });
  }

  function syncControls(pages) {
    $("f-class").value = String(st.cls);
    $("f-split").value = String(st.split);
    if (C.bin) $("f-bin").value = String(st.bin);
    if (ix.has_scores) { $("f-pref").value = String(st.pref); $("f-sort").value = st.sort; }
    var e = ix.hist_edges, G = ix.grid, text = "";
    if (st.sel && st.sel.kind === "hist") {
      text = "d in [" + fmt(e[st.sel.k], 2) + ", " + fmt(e[st.sel.k + 1], 2) + (st.sel.k === e.length - 2 ? "]" : ")");
    } else if (st.sel) {
      var cx = Math.floor(st.sel.k / G), cy = st.sel.k % G;
      text = "p_visual in [" + fmt(cx / G, 2) + ", " + fmt((cx + 1) / G, 2) + "), p_audio in [" +
        fmt(cy / G, 2) + ", " + fmt((cy + 1) / G, 2) + ")";
    }
    $("selection").textContent = text ? "plot selection: " + text : "";
    $("clear-selection").hidden = !st.sel;
    $("status").textContent = current.length + " of " + ix.n + " samples \u00b7 page " + (st.page + 1) +
      " of " + pages;
    $("prev").disabled = st.page === 0;
    $("next").disabled = st.page >= pages - 1;
  }

  // ---- marks ---------------------------------------------------------------------------------

  function syncMarks() {
    $("marked-count").textContent = markedCount + (markedCount === 1 ? " clip marked" : " clips marked");
    $("export-marked").disabled = markedCount === 0;
    $("clear-marked").disabled = markedCount === 0;
  }
  function toggleMark(id, on) {
    if (on && !marked[id]) { marked[id] = true; markedCount += 1; }
    if (!on && marked[id]) { delete marked[id]; markedCount -= 1; }
    syncMarks();
  }
  function markedText() {
    var ids = Object.keys(marked).sort();
    return "# " + ids.length + " clips marked in mmcurate browse (" + ix.title + ")\n" +
      "# mmcurate balance --exclude THIS_FILE leaves them out\n" + ids.join("\n") + "\n";
  }
  M.markedText = markedText;
  function exportMarked() {
    var url = URL.createObjectURL(new Blob([markedText()], { type: "text/plain" }));
    var a = el("a", { href: url, download: "marked_ids.txt" });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  }

  // ---- cards ---------------------------------------------------------------------------------

  function renderCards() {
    var mine = ++token;
    var slice = current.slice(st.page * ix.page_size, (st.page + 1) * ix.page_size);
    var need = {};
    slice.forEach(function (i) { need[Math.floor(i / ix.chunk_size)] = true; });
    document.body.dataset.state = "loading";
    Promise.all(Object.keys(need).map(function (k) { return loadChunk(Number(k)); })).then(function () {
      if (mine !== token) return;
      var box = $("cards");
      box.textContent = "";
      slice.forEach(function (i) { box.appendChild(card(i)); });
      if (!slice.length) box.appendChild(el("p", { "class": "muted" }, "No samples match."));
      M.renders += 1;
      if (!M.firstReadyAt) M.firstReadyAt = performance.now();  // for benchmarks/browse.py
      document.body.dataset.state = "ready";
    }, function (err) { if (mine === token) M.fail(err.message); });
  }

  function card(i) {
    var row = M.chunks[Math.floor(i / ix.chunk_size)][i % ix.chunk_size];
    var get = function (f) { return row[F[f]]; };
    var box = el("article", { "class": "card", "data-sample-id": get("id"), "data-index": i });
    var mark = el("input", { type: "checkbox", "class": "mark", title: "mark this clip (download the marked ids)" });
    mark.checked = !!marked[get("id")];
    mark.addEventListener("change", function () { toggleMark(get("id"), mark.checked); });
    var markLabel = el("label", { "class": "mark" });
    markLabel.appendChild(mark);
    markLabel.appendChild(document.createTextNode(" mark"));
    box.appendChild(markLabel);
    var frames = el("div", { "class": "frames" });
    get("frames").forEach(function (src, k) {
      frames.appendChild(el("img", { src: src, alt: "frame " + (k + 1), loading: "lazy" }));
    });
    if (ix.has_media) box.appendChild(frames);
    // preload "metadata": the player shows the clip's real length before it is played (a few KB of the FLAC
    // header per card, not the audio)
    if (get("audio")) box.appendChild(el("audio", { controls: "", preload: "metadata", src: get("audio") }));
    else if (ix.has_media) box.appendChild(el("div", { "class": "muted" }, "no audio stored"));
    box.appendChild(el("div", { "class": "label" }, ix.classes[C.label[i]]));
    if (C.weak && C.weak[i]) {
      box.appendChild(el("span", { "class": "weak", title: "neither scorer is confident in the true class: " +
        "its d says little about which modality is stronger" }, "both weak"));
    }
    var dl = el("dl");
    var add = function (k, v, cls) {
      dl.appendChild(el("dt", {}, k));
      dl.appendChild(el("dd", cls ? { "class": cls } : {}, v));
    };
    if (ix.has_scores && get("d") !== null) {
      add("p_audio", fmt(get("p_audio")));
      add("p_visual", fmt(get("p_visual")));
      var std = get("d_std");
      add("d", signed(get("d")) + (std !== null && std !== undefined ? " \u00b1 " + fmt(std) : ""));
      var pref = C.pref[i] === NONE8 ? "n/a" : ix.preferred[C.pref[i]];
      add("preferred", pref, "pref-" + pref);
      if (get("pred_audio") !== null || get("pred_visual") !== null) {
        add("predicted", "audio " + (get("pred_audio") === null ? "n/a" : get("pred_audio")) + ", visual " +
          (get("pred_visual") === null ? "n/a" : get("pred_visual")));
      }
      if (get("fold") !== null) add("fold", get("fold") < 0 ? "imported scores" : get("fold"));
    } else if (ix.has_scores) {
      add("d", "not scored");
    }
    if (C.bin) add("bin", C.bin[i] === NONE16 ? "n/a" : C.bin[i] + ": " + ix.bins[C.bin[i]]);
    add("split", ix.splits[C.split[i]]);
    if (get("segment")) add("segment", fmt(get("segment")[0], 2) + "\u2013" + fmt(get("segment")[1], 2) + " s");
    if (get("duration") !== null) add("duration", fmt(get("duration"), 2) + " s");
    add("source", get("path"));
    add("sample_id", get("id"));
    box.appendChild(dl);
    return box;
  }
})();
