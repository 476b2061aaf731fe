/* rnn-zoo board page: sort, filter, search, choose columns, keep the view in the address, place a dropped record.
 *
 * Our own code, no framework, nothing fetched: the board comes from the page's embedded JSON
 * (#board-data, written by zoo.app.site), so the page works when opened straight from a file too.
 * The table is served as HTML; this script only reorders and hides its rows. A dropped
 * record is read with FileReader and checked against #record-rules (zoo.app.site.schema);
 * nothing leaves the browser.
 */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("board-data").textContent);
  var rules = JSON.parse(document.getElementById("record-rules").textContent);
  var table = document.getElementById("board");
  var tbody = table.tBodies[0];
  var columns = data.columns;
  var colIndex = {};
  columns.forEach(function (c, i) { colIndex[c.key] = i; });
  var fixed = columns.filter(function (c) { return c.fixed; }).map(function (c) { return c.key; });
  var collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });
  // Rows put in the table at once: every row is sorted and filtered, the first PAGE of them shown
  // ("Show more" / "Show all"), so that laying out a 1,000-row board never holds up a click.
  var PAGE = 100;

  var served = Array.prototype.slice.call(tbody.rows);
  var rows = data.rows.map(function (r, i) {
    r.i = i;
    r.el = served[i];
    return r;
  });
  var ours = rows.filter(function (r) { return r.kind === "ours"; });

  function defaultHidden() {
    return columns.filter(function (c) { return c.hidden && !c.fixed; }).map(function (c) { return c.key; });
  }

  function freshView() {
    return { sort: null, dir: "asc", q: "", facets: {}, pmin: null, pmax: null, external: true, hidden: defaultHidden(),
             limit: PAGE };
  }

  var view = freshView();

  // ------------------------------------------------------------------ filtering and sorting
  function matches(r) {
    if (r.kind === "yours") return true;
    if (view.q) {
      var terms = view.q.toLowerCase().split(/\s+/);
      for (var t = 0; t < terms.length; t++) if (terms[t] && r.s.indexOf(terms[t]) < 0) return false;
    }
    if (r.kind === "external") return view.external;
    for (var key in view.facets) {
      var chosen = view.facets[key];
      if (!chosen) continue;
      var has = r.f[key] || [];
      var hit = false;
      for (var j = 0; j < has.length; j++) if (chosen.indexOf(has[j]) >= 0) { hit = true; break; }
      if (!hit) return false;
    }
    if (view.pmin !== null && !(r.p >= view.pmin)) return false;
    if (view.pmax !== null && !(r.p <= view.pmax)) return false;
    return true;
  }

  function compare(a, b) {
    var k = colIndex[view.sort];
    var x = a.v[k], y = b.v[k];
    if (x === null || x === undefined) return (y === null || y === undefined) ? a.i - b.i : 1;  // none: always last
    if (y === null || y === undefined) return -1;
    var d = (typeof x === "number" && typeof y === "number") ? x - y : collator.compare(String(x), String(y));
    if (d === 0) return a.i - b.i;
    return view.dir === "desc" ? -d : d;
  }

  function apply() {
    var visible = rows.filter(matches);
    visible.sort(view.sort ? compare : function (a, b) { return a.i - b.i; });
    var frag = document.createDocumentFragment();
    var matching = 0, shown = 0, external = 0;
    for (var i = 0; i < visible.length; i++) {
      var r = visible[i];
      if (r.kind === "ours") {
        matching += 1;
        if (view.limit && matching > view.limit) continue;  // past the page: sorted and filtered, not laid out
        shown += 1;
      } else if (r.kind === "external") {
        external += 1;
      }
      frag.appendChild(r.el);
    }
    tbody.replaceChildren(frag);
    table.setAttribute("data-matching", String(matching));
    var published = external ? " and " + external + " published number" + (external > 1 ? "s" : "") : "";
    document.getElementById("count").textContent = shown < matching
      ? "Showing the first " + shown + " of " + matching + " matching models (" + ours.length.toLocaleString("en") + " in all)" + published + "."
      : "Showing " + shown + " of " + ours.length + " models" + published + ".";
    more.hidden = shown >= matching;
    more.querySelector("#more-rows").textContent = "Show " + Math.min(PAGE, matching - shown) + " more";
    var heads = table.tHead.rows[0].cells;
    for (var h = 0; h < heads.length; h++) {
      var key = heads[h].getAttribute("data-key");
      heads[h].setAttribute("aria-sort", key === view.sort ? (view.dir === "desc" ? "descending" : "ascending") : "none");
    }
    var css = view.hidden.map(function (k) { return "#board .c-" + k + "{display:none}"; }).join("\n");
    if (columnStyle.textContent !== css) columnStyle.textContent = css;  // a new sheet restyles the whole page
  }

  var more = document.getElementById("more");
  var columnStyle = document.createElement("style");
  document.head.appendChild(columnStyle);

  // ------------------------------------------------------------------ the view in the address
  function sameList(a, b) {
    return a.length === b.length && a.slice().sort().join(",") === b.slice().sort().join(",");
  }

  function toHash() {
    var p = new URLSearchParams();
    if (view.sort) { p.set("sort", view.sort); p.set("dir", view.dir); }
    if (view.q) p.set("q", view.q);
    data.facets.forEach(function (f) {
      var chosen = view.facets[f.key];
      if (!chosen) return;
      if (!chosen.length) p.append(f.key, "");
      chosen.forEach(function (v) { p.append(f.key, v); });
    });
    if (view.pmin !== null) p.set("pmin", String(view.pmin));
    if (view.pmax !== null) p.set("pmax", String(view.pmax));
    if (!view.external) p.set("external", "0");
    if (!sameList(view.hidden, defaultHidden())) p.set("hide", view.hidden.slice().sort().join(","));
    if (view.limit !== PAGE) p.set("rows", view.limit ? String(view.limit) : "all");
    return p.toString();
  }

  function writeHash() {
    var hash = toHash();
    var target = location.href.split("#")[0] + (hash ? "#" + hash : "");
    if (target === location.href) return;
    try {
      history.replaceState(null, "", target);
    } catch (e) {
      location.replace(target);
    }
  }

  function number(text) {
    if (text === null || text === "") return null;
    var n = Number(text);
    return isFinite(n) ? n : null;
  }

  function fromHash() {
    var p = new URLSearchParams(location.hash.replace(/^#/, ""));
    view = freshView();
    if (p.has("sort") && colIndex.hasOwnProperty(p.get("sort"))) {
      view.sort = p.get("sort");
      view.dir = p.get("dir") === "desc" ? "desc" : "asc";
    }
    view.q = p.get("q") || "";
    data.facets.forEach(function (f) {
      if (!p.has(f.key)) return;
      view.facets[f.key] = p.getAll(f.key).filter(function (v) { return f.values.indexOf(v) >= 0; });
    });
    view.pmin = number(p.get("pmin"));
    view.pmax = number(p.get("pmax"));
    view.external = p.get("external") !== "0";
    if (p.has("rows")) view.limit = p.get("rows") === "all" ? 0 : Math.max(PAGE, number(p.get("rows")) || PAGE);
    if (p.has("hide")) {
      view.hidden = p.get("hide").split(",").filter(function (k) {
        return colIndex.hasOwnProperty(k) && fixed.indexOf(k) < 0;  // a key column is never hidden
      });
    }
    syncControls();
  }

  // ------------------------------------------------------------------ controls
  var controls = document.getElementById("controls");
  var search = document.getElementById("q");
  var pmin = document.getElementById("pmin");
  var pmax = document.getElementById("pmax");
  var externalBox = document.getElementById("show-external");

  function syncControls() {
    search.value = view.q;
    pmin.value = view.pmin === null ? "" : String(view.pmin);
    pmax.value = view.pmax === null ? "" : String(view.pmax);
    externalBox.checked = view.external;
    controls.querySelectorAll("fieldset[data-facet]").forEach(function (fs) {
      var chosen = view.facets[fs.getAttribute("data-facet")];
      fs.querySelectorAll("input").forEach(function (box) { box.checked = !chosen || chosen.indexOf(box.value) >= 0; });
    });
    controls.querySelectorAll("input[data-column]").forEach(function (box) {
      var key = box.getAttribute("data-column");
      box.checked = fixed.indexOf(key) >= 0 || view.hidden.indexOf(key) < 0;
    });
  }

  function changed() {
    apply();
    writeHash();
  }

  search.addEventListener("input", function () { view.q = search.value.trim(); changed(); });
  pmin.addEventListener("input", function () { view.pmin = number(pmin.value); changed(); });
  pmax.addEventListener("input", function () { view.pmax = number(pmax.value); changed(); });
  externalBox.addEventListener("change", function () { view.external = externalBox.checked; changed(); });
  controls.querySelectorAll("fieldset[data-facet]").forEach(function (fs) {
    fs.addEventListener("change", function () {
      var boxes = Array.prototype.slice.call(fs.querySelectorAll("input"));
      var chosen = boxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
      view.facets[fs.getAttribute("data-facet")] = chosen.length === boxes.length ? null : chosen;
      changed();
    });
  });
  controls.querySelectorAll("input[data-column]").forEach(function (box) {
    box.addEventListener("change", function () {
      var key = box.getAttribute("data-column");
      if (fixed.indexOf(key) >= 0) { box.checked = true; return; }  // key columns stay
      view.hidden = view.hidden.filter(function (k) { return k !== key; });
      if (!box.checked) view.hidden.push(key);
      changed();
    });
  });
  table.tHead.querySelectorAll("button[data-sort]").forEach(function (button) {
    button.addEventListener("click", function () {
      var key = button.getAttribute("data-sort");
      if (view.sort === key) {
        view.dir = view.dir === "asc" ? "desc" : "asc";
      } else {
        view.sort = key;
        view.dir = key === "median" && data.mode === "max" ? "desc" : "asc";  // the metric: best first
      }
      changed();
    });
  });
  document.getElementById("more-rows").addEventListener("click", function () {
    if (view.limit) view.limit += PAGE;
    changed();
  });
  document.getElementById("all-rows").addEventListener("click", function () {
    view.limit = 0;
    changed();
  });
  document.getElementById("reset").addEventListener("click", function () {
    view = freshView();
    syncControls();
    changed();
  });
  window.addEventListener("hashchange", function () { fromHash(); apply(); });

  // ------------------------------------------------------------------ drop a record
  var result = document.getElementById("drop-result");

  function typeName(t) {
    if (Array.isArray(t)) return "one of " + t.map(function (v) { return JSON.stringify(v); }).join(", ");
    return { string: "a string", integer: "an integer", number: "a number", boolean: "true or false",
             object: "an object" }[t] || t;
  }

  function typeOk(v, t) {
    if (Array.isArray(t)) return t.indexOf(v) >= 0;
    if (t === "string") return typeof v === "string";
    if (t === "integer") return typeof v === "number" && Math.floor(v) === v && isFinite(v);
    if (t === "number") return typeof v === "number" && isFinite(v);
    if (t === "boolean") return typeof v === "boolean";
    if (t === "object") return v !== null && typeof v === "object" && !Array.isArray(v);
    return false;
  }

  function field(obj, path) {
    var parts = path.split(".");
    for (var i = 0; i < parts.length; i++) {
      if (obj === null || typeof obj !== "object" || !Object.prototype.hasOwnProperty.call(obj, parts[i])) return undefined;
      obj = obj[parts[i]];
    }
    return obj;
  }

  function fail(outcome, text, link) {
    return { ok: false, outcome: outcome, text: text, link: link };
  }

  function check(text, name) {
    var rec;
    try {
      rec = JSON.parse(text);
    } catch (e) {
      return fail("not-json", name + " is not JSON, so it is not a run record (" + e.message + ").");
    }
    if (!rec || typeof rec !== "object" || Array.isArray(rec) || rec.schema !== rules.schema) {
      return fail("not-a-record", name + " is not an rnn-zoo run record: it has no \"schema\": \"" + rules.schema +
                  "\". Drop the JSON record that zoo bench run writes for each run.");
    }
    if (rules.versions.indexOf(rec.schema_version) < 0) {
      return fail("version", name + " is a run record of schema version " + JSON.stringify(rec.schema_version) +
                  "; this site reads versions " + rules.versions.join(", ") + ".");
    }
    var fields = [rules.required, rules.placed, rec.schema_version === rules.current ? rules.current_fields : {}];
    for (var g = 0; g < fields.length; g++) {
      for (var path in fields[g]) {
        var v = field(rec, path), t = fields[g][path];
        if (v === undefined) {
          return fail("malformed", name + " is not a complete run record: it has no \"" + path + "\" field (" +
                      typeName(t) + ").");
        }
        if (!typeOk(v, t)) {
          return fail("malformed", name + " is not a valid run record: \"" + path + "\" must be " + typeName(t) +
                      ", not " + String(JSON.stringify(v)).slice(0, 40) + ".");
        }
      }
    }
    if (rec.benchmark !== data.benchmark || rec.tier !== data.tier) {
      var page = data.boards[rec.benchmark + "|" + rec.tier];
      return fail("foreign", name + " is a record of " + rec.benchmark + " (" + rec.tier + " tier), not of this board, " +
                  data.benchmark + " (" + data.tier + " tier)" + (page ? ": place it on its own board." :
                  "; this site has no board for it."), page);
    }
    if (rec.task.target_metric !== data.metric) {
      return fail("foreign", name + " is ranked by " + rec.task.target_metric + ", this board by " + data.metric +
                  ": it is not a run of this board's task.");
    }
    return { ok: true, record: rec };
  }

  function median(values) {
    var s = values.slice().sort(function (a, b) { return a - b; });
    var m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  }

  function repr(v) {  // as Python's repr shows a JSON value, the way `zoo leaderboard compare` prints it
    if (v === null || v === undefined) return "None";
    if (v === true) return "True";
    if (v === false) return "False";
    if (typeof v === "string") return "'" + v + "'";
    return typeof v === "object" ? JSON.stringify(v) : String(v);
  }

  function canonical(v) {
    if (v === undefined) v = null;
    if (v && typeof v === "object" && !Array.isArray(v)) {
      return "{" + Object.keys(v).sort().map(function (k) { return JSON.stringify(k) + ":" + canonical(v[k]); }).join(",") + "}";
    }
    if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
    return JSON.stringify(v);
  }

  // zoo.app.boards.setting_differences: what makes two runs not apples to apples (task settings and budget).
  function differences(mine, board) {
    var out = [], a = mine.data, b = board.data;
    if (a["class"] !== b["class"]) out.push("task " + a["class"] + " vs " + b["class"]);
    var keys = Object.keys(a.args).concat(Object.keys(b.args)).filter(function (k, i, all) { return all.indexOf(k) === i; });
    keys.sort().forEach(function (k) {
      if (canonical(a.args[k]) !== canonical(b.args[k])) out.push("data." + k + " " + repr(a.args[k]) + " vs " + repr(b.args[k]));
    });
    rules.budget_keys.forEach(function (k) {
      if (canonical(mine.trainer[k]) !== canonical(board.trainer[k])) {
        out.push("trainer." + k + " " + repr(mine.trainer[k]) + " vs " + repr(board.trainer[k]));
      }
    });
    if (mine.stop_at_target !== board.stop_at_target) {
      out.push("stop_at_target " + repr(mine.stop_at_target) + " vs " + repr(board.stop_at_target));
    }
    return out;
  }

  function fmt(v) {
    return v === null ? "–" : String(Number(v.toPrecision(4)));
  }

  // Where a record would rank: against each model's median over its scored seeds, the dropped
  // run itself left out when it is one of the board's (as `zoo leaderboard compare` does).
  function place(rec) {
    var state = rec.state || (rec.diverged ? "diverged" : null);
    var value = rec.metrics.test[data.metric];
    var scored = state === null ? typeof value === "number" : rules.scored.indexOf(state) >= 0;
    if (!scored || typeof value !== "number" || !isFinite(value)) value = null;
    var medians = [];
    ours.forEach(function (r) {
      var values = r.seeds.filter(function (s) { return !(s[0] === rec.id && s[1] === rec.created) && s[2] !== null; })
        .map(function (s) { return s[2]; });
      if (values.length) medians.push(median(values));
    });
    var better = data.mode === "min" ? function (m) { return m < value; } : function (m) { return m > value; };
    var rank = value === null ? null : 1 + medians.filter(better).length;
    return { state: state || "unknown (a version-1 record keeps none)", value: value, rank: rank, ranked: medians.length,
             differences: differences(rec.config, data.settings) };
  }

  function cell(key, content) {
    var td = document.createElement("td");
    td.className = "c-" + key + (columns[colIndex[key]].numeric ? " num" : "");
    if (content instanceof Node) td.appendChild(content); else td.textContent = content === undefined ? "" : content;
    return td;
  }

  function badge(state) {
    var span = document.createElement("span");
    span.className = "state state-" + state.split(" ")[0];
    span.textContent = state;
    return span;
  }

  function addYours(rec, placed) {
    rows = rows.filter(function (r) { return r.kind !== "yours"; });
    var tr = document.createElement("tr");
    tr.className = "row-yours";
    var texts = {
      rank: placed.rank === null ? "yours: no rank" : "yours: would be " + placed.rank,
      model: rec.model + " (yours)",
      median: placed.value === null ? badge(placed.state) : fmt(placed.value),
      seeds: "s" + rec.seed,
      param_count: typeof rec.params === "number" ? rec.params.toLocaleString("en") : ""
    };
    var v = columns.map(function (c) {
      return { model: rec.model, median: placed.value, param_count: rec.params }[c.key] || null;
    });
    columns.forEach(function (c) { tr.appendChild(cell(c.key, texts[c.key])); });
    rows.unshift({ kind: "yours", i: -1, v: v, el: tr, s: "", f: {} });
    apply();
  }

  function show(outcome, nodes) {
    result.setAttribute("data-outcome", outcome);
    result.replaceChildren();
    var p = document.createElement("p");
    p.className = "message";
    nodes.forEach(function (n) { p.appendChild(typeof n === "string" ? document.createTextNode(n) : n); });
    result.appendChild(p);
    return p;
  }

  function handle(text, name) {
    var checked = check(text, name);
    result.removeAttribute("data-rank");
    if (!checked.ok) {
      rows = rows.filter(function (r) { return r.kind !== "yours"; });
      apply();
      var nodes = [checked.text];
      if (checked.link) {
        var a = document.createElement("a");
        a.href = checked.link;
        a.textContent = " Open that board.";
        nodes.push(a);
      }
      show(checked.outcome, nodes);
      return;
    }
    var rec = checked.record;
    var placed = place(rec);
    var head = placed.value === null
      ? rec.id + ": " + placed.state + ", so it has no rank (failed and diverged runs are counted apart, never ranked)."
      : rec.id + ": test " + data.metric + " " + fmt(placed.value) + " (" + placed.state + ") would rank " + placed.rank +
        " of the board's " + placed.ranked + " ranked models (by their medians).";
    var p = show("placed", [head]);
    if (placed.rank !== null) result.setAttribute("data-rank", String(placed.rank));
    var verdict = document.createElement("p");
    verdict.className = "verdict";
    if (!placed.differences.length) {
      verdict.textContent = "Same task settings and budget as the board: apples to apples.";
      result.appendChild(verdict);
    } else {
      verdict.textContent = "Not apples to apples: it differs from the board's settings in";
      var list = document.createElement("ul");
      list.className = "differences";
      placed.differences.forEach(function (d) {
        var li = document.createElement("li");
        li.textContent = d;
        list.appendChild(li);
      });
      result.appendChild(verdict);
      result.appendChild(list);
    }
    addYours(rec, placed);
    return p;
  }

  function read(file) {
    if (!file) return;
    var reader = new FileReader();
    reader.onload = function () { handle(String(reader.result), file.name); };
    reader.onerror = function () { show("unreadable", [file.name + " could not be read."]); };
    reader.readAsText(file);
  }

  var input = document.getElementById("record-file");
  input.addEventListener("change", function () { read(input.files[0]); });
  var zone = document.getElementById("drop");
  zone.addEventListener("dragover", function (e) { e.preventDefault(); document.getElementById("dropzone").classList.add("over"); });
  zone.addEventListener("dragleave", function () { document.getElementById("dropzone").classList.remove("over"); });
  zone.addEventListener("drop", function (e) {
    e.preventDefault();
    document.getElementById("dropzone").classList.remove("over");
    read(e.dataTransfer && e.dataTransfer.files[0]);
  });
  // A file dropped beside the zone would make the browser leave the page for it.
  window.addEventListener("dragover", function (e) { e.preventDefault(); });
  window.addEventListener("drop", function (e) { e.preventDefault(); });

  controls.hidden = false;
  fromHash();
  apply();
  document.documentElement.setAttribute("data-board-ready", "1");
})();
