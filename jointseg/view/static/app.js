// jointseg viewer: two synced MapLibre maps with a swipe bar (maplibre-gl-compare), one
// product layer per side over the composite, tiles from the local server only.
// URL query: ?year=<region>/<year>&left=<layer id>&right=<layer id>&opacity=<0..1>.
// window.jointsegViewer.idle is true once both maps are idle after the last change
// (the browser test waits for it).
"use strict";

const viewer = { idle: false, idleSides: { left: false, right: false }, error: null };
window.jointsegViewer = viewer;
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const EMPTY_STYLE = {
  version: 8, sources: {},
  layers: [{ id: "background", type: "background", paint: { "background-color": "#20242a" } }],
};

let products = [];   // [{key, region, year, simulated, layers: [...]}]
let current = null;  // the product (region/year) shown
const maps = {};

function tileUrl(product, layerId) {
  return `${location.origin}/tiles/${product.region}/${product.year}/${layerId}/{z}/{x}/{y}.png`;
}

function unionBounds(layers) {
  const b = layers.map((l) => l.bounds);
  return [Math.min(...b.map((x) => x[0])), Math.min(...b.map((x) => x[1])),
          Math.max(...b.map((x) => x[2])), Math.max(...b.map((x) => x[3]))];
}

function addRaster(map, product, layer, id, opacity) {
  map.addSource(id, {
    type: "raster", tiles: [tileUrl(product, layer.id)], tileSize: 256,
    // the server refuses tiles below layer.minzoom (too costly to read): never ask for them
    bounds: layer.bounds, minzoom: layer.minzoom, maxzoom: layer.maxzoom,
    attribution: layer.attribution,
  });
  map.addLayer({
    id, type: "raster", source: id,
    paint: {
      "raster-opacity": opacity, "raster-fade-duration": 0,
      "raster-resampling": layer.kind === "classes" ? "nearest" : "linear",
    },
  });
}

function clearRasters(map) {
  for (const id of ["base", "overlay"]) {
    if (map.getLayer(id)) map.removeLayer(id);
    if (map.getSource(id)) map.removeSource(id);
  }
}

function markBusy(side) {
  viewer.idle = false;
  viewer.idleSides[side] = false;
}

function shownLayers(side) {
  const layer = current.layers.find((l) => l.id === $(`${side}-layer`).value);
  const base = current.layers.find((l) => l.id === "composite");
  return base && layer.id !== "composite" ? [base, layer] : [layer];
}

// Both maps (kept in sync by the swipe) zoom out no further than the coarsest zoom at
// which every layer shown on either side has tiles.
function clampZoom() {
  const layers = [...shownLayers("left"), ...shownLayers("right")];
  const minZoom = Math.max(0, ...layers.map((l) => l.minzoom));
  for (const map of Object.values(maps)) map.setMinZoom(Math.min(minZoom, 22));
}

function showSide(side) {
  const map = maps[side];
  const layers = shownLayers(side);
  const layer = layers[layers.length - 1];
  const opacity = parseFloat($(`${side}-opacity`).value);
  markBusy(side);
  clearRasters(map);
  if (layers.length > 1) addRaster(map, current, layers[0], "base", 1);
  addRaster(map, current, layer, "overlay", opacity);
  renderLegend($(`legend-${side}`), layer);
  clampZoom();
  map.triggerRepaint();
}

function renderLegend(box, layer) {
  const lg = layer.legend;
  let html = `<h4>${layer.title}</h4>`;
  if (lg.type === "classes") {
    html += lg.entries.map((e) =>
      `<div><span class="swatch" style="background:${e.colour}"></span>${e.label}</div>`).join("");
  } else if (lg.type === "ramp") {
    html += `<div class="ramp" style="background:linear-gradient(to right,${lg.colours.join(",")})"></div>`
      + `<div class="ends"><span>${lg.min}</span><span>${lg.unit}</span><span>${lg.max}</span></div>`;
  } else {
    html += "<div>red/green/blue bands, 2–98 % stretch</div>";
  }
  if (layer.attribution) html += `<div class="attr">${layer.attribution}</div>`;
  box.innerHTML = html;
}

function fillLayerSelect(select, layers, wanted) {
  select.innerHTML = layers.map((l) => `<option value="${l.id}">${l.title}</option>`).join("");
  const ids = layers.map((l) => l.id);
  select.value = wanted.find((id) => ids.includes(id)) || ids[0];
}

function showProduct(key) {
  current = products.find((p) => p.key === key) || products[0];
  $("banner").hidden = !current.simulated;
  fillLayerSelect($("left-layer"), current.layers,
    [params.get("left"), $("left-layer").value, "composite", "sr"]);
  fillLayerSelect($("right-layer"), current.layers,
    [params.get("right"), $("right-layer").value, "isa"]);
  showSide("left");
  showSide("right");
  // after showSide: fitBounds stops at the map's minZoom of this product's layers
  maps.left.fitBounds(unionBounds(current.layers), { animate: false, padding: 10 });
}

async function showValues(map, e) {
  const { lng, lat } = e.lngLat;
  const url = `/point/${current.region}/${current.year}?lon=${lng}&lat=${lat}`;
  const res = await fetch(url);
  const doc = await res.json();
  const rows = doc.layers.map((l) => `<tr><td>${l.title}</td><td><b>${l.label}</b></td></tr>`);
  new maplibregl.Popup({ maxWidth: "26em" }).setLngLat(e.lngLat)
    .setHTML(`<table class="values">${rows.join("")}</table>`
      + `<div>${lat.toFixed(6)}, ${lng.toFixed(6)}</div>`)
    .addTo(map);
}

function makeMap(side, container) {
  const map = new maplibregl.Map({
    container, style: EMPTY_STYLE, center: [0, 0], zoom: 1, maxZoom: 22,
    attributionControl: { compact: false }, fadeDuration: 0,
  });
  map.on("idle", () => {
    viewer.idleSides[side] = true;
    viewer.idle = viewer.idleSides.left && viewer.idleSides.right;
  });
  map.on("error", (e) => { viewer.error = String(e.error && e.error.message); });
  map.on("click", (e) => showValues(map, e));
  maps[side] = map;
  return map;
}

async function main() {
  products = await (await fetch("/api/layers")).json();
  const before = makeMap("left", "before");
  const after = makeMap("right", "after");
  before.addControl(new maplibregl.ScaleControl(), "top-left");
  after.addControl(new maplibregl.NavigationControl(), "top-right");
  new maplibregl.Compare(before, after, "#comparison-container", {});
  await Promise.all([before, after].map((m) => new Promise((ok) => m.once("load", ok))));
  const years = $("year");
  years.innerHTML = products.map((p) => `<option value="${p.key}">${p.key}</option>`).join("");
  $("year-box").hidden = products.length < 2;
  years.value = params.get("year") || products[0].key;
  years.addEventListener("change", () => showProduct(years.value));
  for (const side of ["left", "right"]) {
    $(`${side}-layer`).addEventListener("change", () => showSide(side));
    $(`${side}-opacity`).addEventListener("input", () => {
      maps[side].setPaintProperty("overlay", "raster-opacity",
        parseFloat($(`${side}-opacity`).value));
    });
    if (params.get("opacity")) $(`${side}-opacity`).value = params.get("opacity");
  }
  showProduct(years.value);
}

main().catch((err) => { viewer.error = String(err); console.error(err); });
