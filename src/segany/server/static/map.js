// The map page: click to include (right click or Alt+click to exclude) a place, drag to draw a
// rectangle; every change sends the prompts in view to POST /infer_samgis and draws the
// polygons it returns. The answer's GeoJSON can be downloaded. Publishes `window.seganyMap`
// (prompts, last answer, view) for the browser tests.

import { Api, ignoreReported } from "./api.js";
import { MapView } from "./mapview.js";
import { MessageBar } from "./messages.js";
import { storedUser, takeToken } from "./session.js";

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
const SVG = "http://www.w3.org/2000/svg";
const DEFAULT_VIEW = { lat: 45.4642, lng: 9.19, zoom: 15 };

const messages = new MessageBar($("message-bar"));
window.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  if (event.reason && event.reason.reported) return;
  messages.error(`unexpected error: ${event.reason?.message ?? event.reason}`);
});

const api = new Api({
  token: takeToken(),
  user: () => storedUser(),
  report: (m) => messages.error(m),
});

const state = {
  prompts: [], // {id, type: "point"|"rectangle", data, label?} in lat/lng, SamGIS's shape
  answer: null, // the last /infer_samgis response
  requests: 0, // answers received (read by tests)
  nextId: 1,
  sent: 0, // sequence number: answers to older requests are dropped
  source: null,
};
window.seganyMap = state;

const view = new MapView($("map"), {
  onView: () => {
    draw();
    rememberView();
  },
  onClick: (place, event) => {
    const exclude = event.button === 2 || event.altKey || $("mode-exclude").checked;
    addPrompt({ type: "point", data: place, label: exclude ? 0 : 1 });
  },
  onRectangle: (sw, ne) => addPrompt({ type: "rectangle", data: { ne, sw } }),
});
state.view = view;

function addPrompt(prompt) {
  state.prompts.push({ id: state.nextId++, ...prompt });
  infer();
}

/** The prompts that lie in the view (the API refuses the others). */
function promptsInView(bounds) {
  const inside = (p) =>
    p.lng >= bounds.west && p.lng <= bounds.east && p.lat >= bounds.south && p.lat <= bounds.north;
  return state.prompts.filter((p) =>
    p.type === "point" ? inside(p.data) : inside(p.data.ne) && inside(p.data.sw),
  );
}

async function infer() {
  draw();
  const bounds = view.bounds();
  const prompt = promptsInView(bounds);
  if (!prompt.length) {
    state.answer = null;
    draw();
    setStatus("Click on something in the map.");
    return;
  }
  const body = {
    id: `map-${state.sent + 1}`,
    bbox: {
      ne: { lat: bounds.north, lng: bounds.east },
      sw: { lat: bounds.south, lng: bounds.west },
    },
    prompt,
    zoom: view.zoom,
    source_type: state.source.name,
  };
  const sequence = ++state.sent;
  setStatus("Segmenting…", true);
  let answer;
  try {
    answer = await api.post("/infer_samgis", body);
  } catch (error) {
    if (sequence === state.sent) setStatus("");
    ignoreReported(error);
    return;
  }
  if (sequence !== state.sent) return; // a newer request is on its way
  state.answer = answer;
  state.requests += 1;
  draw();
  const seconds = answer.duration_run.toFixed(2);
  const reuse = answer.cached_embedding ? "cached embedding" : "new embedding";
  setStatus(`${answer.n_shapes_geojson} polygons · ${seconds} s · ${reuse}`);
}

function setStatus(text, busy = false) {
  const status = $("map-status");
  status.textContent = text;
  status.classList.toggle("busy", busy);
  $("download-button").disabled = !state.answer || !state.answer.n_shapes_geojson;
}

// ---- drawing ---------------------------------------------------------------------------

function draw() {
  const layer = view.drawLayer;
  layer.replaceChildren();
  const features = state.answer ? state.answer.geojson.features : [];
  for (const feature of features) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", pathOf(feature.geometry));
    path.classList.add("polygon");
    path.dataset.testid = "polygon";
    const p = feature.properties;
    const title = document.createElementNS(SVG, "title");
    title.textContent = `score ${p.score.toFixed(2)} · ${Math.round(p.area_m2)} m²`;
    path.append(title);
    layer.append(path);
  }
  for (const prompt of state.prompts) {
    if (prompt.type === "point") {
      const [x, y] = view.lngLatToScreen(prompt.data.lng, prompt.data.lat);
      const dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("cx", x);
      dot.setAttribute("cy", y);
      dot.setAttribute("r", 6);
      dot.classList.add("point", prompt.label ? "include" : "exclude");
      dot.dataset.testid = "prompt-point";
      layer.append(dot);
    } else {
      const [x0, y0] = view.lngLatToScreen(prompt.data.sw.lng, prompt.data.ne.lat);
      const [x1, y1] = view.lngLatToScreen(prompt.data.ne.lng, prompt.data.sw.lat);
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", x0);
      rect.setAttribute("y", y0);
      rect.setAttribute("width", x1 - x0);
      rect.setAttribute("height", y1 - y0);
      rect.classList.add("prompt-box");
      rect.dataset.testid = "prompt-rectangle";
      layer.append(rect);
    }
  }
  $("zoom-info").textContent = `zoom ${view.zoom}`;
}

/** An SVG path of a GeoJSON (Multi)Polygon in screen pixels; holes by the even-odd rule. */
function pathOf(geometry) {
  const polygons = geometry.type === "MultiPolygon" ? geometry.coordinates : [geometry.coordinates];
  const parts = [];
  for (const rings of polygons) {
    for (const ring of rings) {
      const points = ring.map(([lng, lat]) => view.lngLatToScreen(lng, lat));
      parts.push(`M${points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join("L")}Z`);
    }
  }
  return parts.join("");
}

// ---- controls --------------------------------------------------------------------------

function download() {
  if (!state.answer) return;
  const text = JSON.stringify(state.answer.geojson, null, 1);
  const url = URL.createObjectURL(new Blob([text], { type: "application/geo+json" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = "segany-map.geojson";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function clear() {
  state.prompts = [];
  state.answer = null;
  state.sent += 1; // drop answers still on their way
  draw();
  setStatus("Cleared.");
}

function undo() {
  if (!state.prompts.length) return;
  state.prompts.pop();
  infer();
}

/** The view and source in the address bar, so that a reload or a shared link keeps them. */
function rememberView() {
  if (!state.source) return;
  const centre = view.screenToLngLat(view.width / 2, view.height / 2);
  const url = new URL(window.location.href);
  url.searchParams.set("lat", centre.lat.toFixed(6));
  url.searchParams.set("lng", centre.lng.toFixed(6));
  url.searchParams.set("zoom", view.zoom);
  url.searchParams.set("source", state.source.requested);
  window.history.replaceState(null, "", url.pathname + url.search);
}

async function useSource(name) {
  const source = await api.get(`/api/geo/source?name=${encodeURIComponent(name)}`);
  state.source = { ...source, requested: name };
  $("attribution").textContent = source.attribution;
  view.setSource(source);
  if (state.prompts.length) infer();
}

async function start() {
  const params = new URL(window.location.href).searchParams;
  const number = (key, fallback) => {
    const value = Number.parseFloat(params.get(key));
    return Number.isFinite(value) ? value : fallback;
  };
  const select = $("source-select");
  const name = params.get("source") || select.value;
  if (![...select.options].some((o) => o.value === name)) select.add(new Option(name, name));
  select.value = name;
  await useSource(name);
  if (state.source.fixed) {
    select.disabled = true; // the server's --tile-url replaces every source
    select.title = "The server draws every source from its own tiles (--tile-url)";
  }
  view.setView(
    number("lng", DEFAULT_VIEW.lng),
    number("lat", DEFAULT_VIEW.lat),
    number("zoom", DEFAULT_VIEW.zoom),
  );
  select.addEventListener("change", () => useSource(select.value).catch(ignoreReported));
  $("download-button").addEventListener("click", download);
  $("clear-button").addEventListener("click", clear);
  $("undo-button").addEventListener("click", undo);
  $("refresh-button").addEventListener("click", () => infer());
  window.addEventListener("keydown", (event) => {
    if (event.target.closest("input, select, textarea")) return;
    if (event.key === "Escape") clear();
    if (event.key === "z" || event.key === "Z") undo();
  });
  setStatus("Click on something in the map.");
  document.body.dataset.ready = "true";
}

start().catch(ignoreReported);
