/* eotriage ground viewer: glue between the page panels and the Leaflet map that folium builds.
 * EOT_DATA (written by ground_decoder.viewer) holds, per detection, its popup (escaped HTML),
 * bounds and chip; the map layers call EOT.register for each feature they draw. */
var EOT = (function () {
  "use strict";
  var map = null;
  var feats = {};
  var halos = {};

  function data() {
    return window.EOT_DATA || { dets: [] };
  }

  function popupHtml(i) {
    var d = data().dets[i];
    if (!d) { return ""; }
    var html = d.popup;
    if (d.chip) { html += '<img alt="image chip" src="' + d.chip + '">'; }
    return '<div class="eot-popup">' + html + "</div>";
  }

  function bind(i, layer) {
    layer.bindPopup(function () { return popupHtml(i); }, { maxWidth: 360 });
    layer.on("click", function () { select(i, true); });
  }

  function register(feature, layer) {
    var i = feature.properties._i;
    feats[i] = layer;
    bind(i, layer);
  }

  function registerHalo(feature, layer) {
    var i = feature.properties._i;
    halos[i] = layer;
    bind(i, layer);
  }

  function registerScene(feature, layer) {
    var html = (data().scenes || [])[feature.properties._s];
    if (html) { layer.bindPopup('<div class="eot-popup">' + html + "</div>", { maxWidth: 360 }); }
  }

  function select(i, scroll) {
    var rows = document.querySelectorAll("tr[data-i]");
    for (var k = 0; k < rows.length; k++) {
      var on = rows[k].getAttribute("data-i") === String(i);
      rows[k].classList.toggle("eot-selected", on);
      if (on && scroll && rows[k].scrollIntoView) { rows[k].scrollIntoView({ block: "nearest" }); }
    }
  }

  function focus(i) {
    var d = data().dets[i];
    select(i, false);
    if (!map || !d || !d.bbox) { return; }
    var b = d.bbox;
    map.fitBounds([[b[1], b[0]], [b[3], b[2]]], { maxZoom: 16, padding: [60, 60], animate: false });
    var layer = feats[i] && map.hasLayer(feats[i]) ? feats[i] : halos[i];
    if (layer && map.hasLayer(layer)) { layer.openPopup(); }
  }

  function cellValue(row, col) {
    var cell = row.cells[col];
    if (!cell) { return ""; }
    var v = cell.getAttribute("data-v");
    return v === null ? cell.textContent.trim().toLowerCase() : v;
  }

  function sortBy(table, col, th) {
    var numeric = th.getAttribute("data-type") === "num";
    var asc = th.getAttribute("aria-sort") !== "ascending";
    var heads = table.tHead.rows[0].cells;
    for (var h = 0; h < heads.length; h++) { heads[h].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, col);
      var y = cellValue(b, col);
      var c;
      if (numeric) {
        var fx = x === "" ? NaN : parseFloat(x);
        var fy = y === "" ? NaN : parseFloat(y);
        if (isNaN(fx) && isNaN(fy)) { c = 0; } else if (isNaN(fx)) { return 1; }
        else if (isNaN(fy)) { return -1; } else { c = fx - fy; }
      } else {
        c = x < y ? -1 : x > y ? 1 : 0;
      }
      return asc ? c : -c;
    });
    for (var r = 0; r < rows.length; r++) { body.appendChild(rows[r]); }
  }

  function initTables() {
    var tables = document.querySelectorAll("table.eot-sortable");
    Array.prototype.forEach.call(tables, function (table) {
      if (!table.tHead) { return; }
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
        th.setAttribute("title", "sort");
        th.addEventListener("click", function () { sortBy(table, col, th); });
      });
    });
    var rows = document.querySelectorAll("table.eot-dets tbody tr[data-i]");
    Array.prototype.forEach.call(rows, function (row) {
      row.addEventListener("click", function () { focus(parseInt(row.getAttribute("data-i"), 10)); });
    });
  }

  function basemapNote(text) {
    var el = document.getElementById("eot-basemap");
    if (el) { el.textContent = text; }
  }

  function fit(m) {
    var b = data().bounds;
    if (b) {
      m.fitBounds([[b[1], b[0]], [b[3], b[2]]],
                  { maxZoom: data().maxZoom || 16, padding: [30, 30], animate: false });
    }
  }

  function init(m) {
    map = m;
    fit(m);
    var container = m.getContainer();
    container.setAttribute("data-eot-ready", "1");
    var legend = L.control({ position: "bottomleft" });
    legend.onAdd = function () {
      var div = L.DomUtil.create("div", "eot-legend");
      div.innerHTML = data().legend || "";
      L.DomEvent.disableClickPropagation(div);
      return div;
    };
    legend.addTo(m);
    var errors = 0;
    var loaded = 0;
    m.eachLayer(function (layer) {
      if (layer instanceof L.TileLayer) {
        layer.on("tileerror", function () {
          errors += 1;
          if (!loaded) { basemapNote("Basemap: offline (plain background and graticule)"); }
        });
        layer.on("tileload", function () {
          loaded += 1;
          basemapNote("Basemap: OpenStreetMap");
        });
      }
    });
    if (!navigator.onLine) { basemapNote("Basemap: offline (plain background and graticule)"); }
    var zoomed = function () { container.classList.toggle("eot-zoomed", m.getZoom() >= 17); };
    m.on("zoomend", zoomed);
    zoomed();
    initTables();
  }

  function initIndex(m) {
    if (m) {
      fit(m);
      m.getContainer().setAttribute("data-eot-ready", "1");
    }
    initTables();
  }

  return {
    register: register, registerHalo: registerHalo, registerScene: registerScene,
    init: init, initIndex: initIndex, focus: focus, select: select
  };
})();
