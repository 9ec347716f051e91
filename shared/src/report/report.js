"use strict";
(function () {
  var table = document.getElementById("findings-table");
  if (!table) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var input = document.getElementById("filter");
  var shown = document.getElementById("shown");
  var chip = document.getElementById("cell-filter");
  var chipText = document.getElementById("cell-filter-text");
  var cell = null;
  function apply() {
    var terms = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    var n = 0;
    rows.forEach(function (r) {
      var t = r.textContent.toLowerCase();
      var ok = terms.every(function (x) { return t.indexOf(x) !== -1; });
      if (cell) { ok = ok && r.dataset.group === cell.group && r.dataset.rule === cell.rule; }
      r.hidden = !ok;
      if (ok) { n += 1; }
    });
    shown.textContent = String(n);
    chip.hidden = !cell;
    chipText.textContent = cell ? cell.rule + " in " + cell.group : "";
  }
  input.addEventListener("input", apply);
  document.getElementById("cell-filter-clear").addEventListener("click", function () {
    cell = null;
    apply();
  });
  Array.prototype.forEach.call(document.querySelectorAll("a.cell"), function (a) {
    a.addEventListener("click", function () {
      cell = { group: a.dataset.group, rule: a.dataset.rule };
      apply();
    });
  });
  function key(r, i, numeric) {
    var c = r.cells[i];
    var v = c.dataset.v !== undefined ? c.dataset.v : c.textContent.trim();
    return numeric ? Number(v) : v.toLowerCase();
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
    if (!th.dataset.sort) { return; }
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("asc");
      var numeric = th.dataset.sort === "num";
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
        h.classList.remove("asc", "desc");
      });
      th.classList.add(asc ? "asc" : "desc");
      rows.sort(function (a, b) {
        var x = key(a, i, numeric), y = key(b, i, numeric);
        var d = x < y ? -1 : x > y ? 1 : 0;
        return asc ? d : -d;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  apply();
})();
