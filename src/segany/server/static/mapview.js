// A slippy map: XYZ tiles as positioned <img> elements, panned and zoomed by hand, with an SVG
// overlay in screen pixels that the page draws on.
//
// Coordinates: world pixels at integer zoom z (the world is 256·2^z px square, (0, 0) at lng
// -180, lat +85.05; x east, y south), the frame of the XYZ tile scheme. Pointer gestures:
// click -> onClick, drag -> a rectangle (onRectangle), Space+drag or middle-button drag -> pan,
// wheel -> zoom around the cursor.

export const TILE = 256;
export const MAX_LAT = 85.0511287798066; // atan(sinh(pi)): where the Web Mercator square ends
const DRAG_PX = 5; // a press that moves less than this is a click
const SVG = "http://www.w3.org/2000/svg";

/** (lng, lat) degrees -> world pixels {x, y} at zoom z (spherical Web Mercator). */
export function project(lng, lat, z) {
  const size = TILE * 2 ** z;
  const s = Math.sin((Math.max(-MAX_LAT, Math.min(MAX_LAT, lat)) * Math.PI) / 180);
  return {
    x: size * (0.5 + lng / 360),
    y: size * (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)),
  };
}

/** World pixels at zoom z -> {lng, lat} degrees. */
export function unproject(x, y, z) {
  const size = TILE * 2 ** z;
  const lng = (x / size - 0.5) * 360;
  const lat = (Math.atan(Math.sinh(Math.PI * (1 - (2 * y) / size))) * 180) / Math.PI;
  return { lng, lat };
}

export class MapView {
  /**
   * @param {HTMLElement} element the map's box (position: relative; overflow: hidden)
   * @param {{onView: () => void, onClick: (p: {lng, lat}, e: MouseEvent) => void,
   *   onRectangle: (sw: {lng, lat}, ne: {lng, lat}) => void}} handlers
   */
  constructor(element, { onView, onClick, onRectangle }) {
    this.element = element;
    this.onView = onView;
    this.onClick = onClick;
    this.onRectangle = onRectangle;
    this.zoom = 2;
    this.center = { x: TILE * 2, y: TILE * 2 }; // world pixels at this.zoom
    this.source = null; // {url, min_zoom, max_zoom}
    this.tiles = new Map(); // "z/x/y" -> <img>
    this.tileLayer = document.createElement("div");
    this.tileLayer.className = "tiles";
    this.overlay = document.createElementNS(SVG, "svg");
    this.overlay.classList.add("overlay");
    this.overlay.dataset.testid = "map-overlay";
    this.dragBox = document.createElementNS(SVG, "rect");
    this.dragBox.classList.add("drag-box");
    this.dragBox.setAttribute("visibility", "hidden");
    this.drawLayer = document.createElementNS(SVG, "g"); // the page's drawings
    this.overlay.append(this.drawLayer, this.dragBox);
    element.append(this.tileLayer, this.overlay);
    this.spaceHeld = false;
    this.bindPointer();
    new ResizeObserver(() => this.render()).observe(element);
  }

  get width() {
    return this.element.clientWidth;
  }

  get height() {
    return this.element.clientHeight;
  }

  setSource(source) {
    this.source = source;
    for (const img of this.tiles.values()) img.remove();
    this.tiles.clear();
    this.setZoom(this.zoom, this.width / 2, this.height / 2);
  }

  /** Centre the map on (lng, lat) at integer zoom z. */
  setView(lng, lat, z) {
    this.zoom = this.clampZoom(z);
    this.center = project(lng, lat, this.zoom);
    this.render();
  }

  clampZoom(z) {
    const min = this.source ? this.source.min_zoom : 0;
    const max = this.source ? this.source.max_zoom : 19;
    return Math.max(min, Math.min(max, Math.round(z)));
  }

  /** Zoom to z keeping the place under screen point (sx, sy) where it is. */
  setZoom(z, sx, sy) {
    const zoom = this.clampZoom(z);
    const anchor = this.screenToWorld(sx, sy);
    const scale = 2 ** (zoom - this.zoom);
    this.center = {
      x: anchor.x * scale - (sx - this.width / 2),
      y: anchor.y * scale - (sy - this.height / 2),
    };
    this.zoom = zoom;
    this.render();
  }

  panBy(dx, dy) {
    this.center = { x: this.center.x - dx, y: this.center.y - dy };
    this.render();
  }

  screenToWorld(sx, sy) {
    return { x: this.center.x + sx - this.width / 2, y: this.center.y + sy - this.height / 2 };
  }

  /** Screen pixel (relative to the map's box) -> {lng, lat}. */
  screenToLngLat(sx, sy) {
    const w = this.screenToWorld(sx, sy);
    return unproject(w.x, w.y, this.zoom);
  }

  /** {lng, lat} -> screen pixel [sx, sy] relative to the map's box. */
  lngLatToScreen(lng, lat) {
    const w = project(lng, lat, this.zoom);
    return [w.x - this.center.x + this.width / 2, w.y - this.center.y + this.height / 2];
  }

  /** The visible extent in degrees, clipped to the map: {west, south, east, north}. */
  bounds() {
    const nw = this.screenToLngLat(0, 0);
    const se = this.screenToLngLat(this.width, this.height);
    return {
      west: Math.max(-180, nw.lng),
      east: Math.min(180, se.lng),
      north: Math.min(MAX_LAT, nw.lat),
      south: Math.max(-MAX_LAT, se.lat),
    };
  }

  render() {
    const size = TILE * 2 ** this.zoom;
    // Keep the world's top and bottom edges from leaving the screen's middle.
    this.center.y = Math.max(0, Math.min(size, this.center.y));
    this.renderTiles();
    this.overlay.setAttribute("width", this.width);
    this.overlay.setAttribute("height", this.height);
    this.onView();
  }

  renderTiles() {
    if (!this.source) return;
    const z = this.zoom;
    const n = 2 ** z;
    const left = this.center.x - this.width / 2;
    const top = this.center.y - this.height / 2;
    const wanted = new Set();
    for (let ty = Math.floor(top / TILE); ty * TILE < top + this.height; ty += 1) {
      if (ty < 0 || ty >= n) continue;
      for (let tx = Math.floor(left / TILE); tx * TILE < left + this.width; tx += 1) {
        if (tx < 0 || tx >= n) continue; // one world, no wrapping: the API takes -180..180
        const key = `${z}/${tx}/${ty}`;
        wanted.add(key);
        let img = this.tiles.get(key);
        if (!img) {
          img = document.createElement("img");
          img.alt = "";
          img.draggable = false;
          img.className = "tile";
          img.src = this.source.url
            .replace("{z}", z)
            .replace("{x}", tx)
            .replace("{y}", ty);
          this.tiles.set(key, img);
          this.tileLayer.append(img);
        }
        img.style.left = `${Math.round(tx * TILE - left)}px`;
        img.style.top = `${Math.round(ty * TILE - top)}px`;
      }
    }
    for (const [key, img] of this.tiles) {
      if (!wanted.has(key)) {
        img.remove();
        this.tiles.delete(key);
      }
    }
  }

  /** Whether every visible tile has loaded (read by the browser test). */
  tilesLoaded() {
    return [...this.tiles.values()].every((img) => img.complete && img.naturalWidth > 0);
  }

  bindPointer() {
    const el = this.element;
    let press = null; // {x, y, pan, moved}
    const local = (event) => {
      const r = el.getBoundingClientRect();
      return [event.clientX - r.left, event.clientY - r.top];
    };
    el.addEventListener("contextmenu", (event) => event.preventDefault());
    el.addEventListener("pointerdown", (event) => {
      if (event.button === 2) return; // right click: handled on pointerup as a click
      const [x, y] = local(event);
      const pan = event.button === 1 || this.spaceHeld;
      press = { x, y, lastX: x, lastY: y, pan, moved: false, button: event.button };
      el.setPointerCapture(event.pointerId);
      el.classList.toggle("panning", pan);
      event.preventDefault();
    });
    el.addEventListener("pointermove", (event) => {
      if (!press) return;
      const [x, y] = local(event);
      if (Math.hypot(x - press.x, y - press.y) >= DRAG_PX) press.moved = true;
      if (press.pan) {
        this.panBy(x - press.lastX, y - press.lastY);
      } else if (press.moved) {
        this.showDragBox(press.x, press.y, x, y);
      }
      press.lastX = x;
      press.lastY = y;
    });
    el.addEventListener("pointerup", (event) => {
      const [x, y] = local(event);
      if (event.button === 2 && !press) {
        this.onClick(this.screenToLngLat(x, y), event);
        return;
      }
      if (!press) return;
      const done = press;
      press = null;
      el.classList.remove("panning");
      this.dragBox.setAttribute("visibility", "hidden");
      if (done.pan) return;
      if (!done.moved) {
        this.onClick(this.screenToLngLat(x, y), event);
        return;
      }
      const a = this.screenToLngLat(Math.min(done.x, x), Math.max(done.y, y)); // south-west
      const b = this.screenToLngLat(Math.max(done.x, x), Math.min(done.y, y)); // north-east
      this.onRectangle(a, b);
    });
    el.addEventListener("pointercancel", () => {
      press = null;
      el.classList.remove("panning");
      this.dragBox.setAttribute("visibility", "hidden");
    });
    el.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        const [x, y] = local(event);
        this.setZoom(this.zoom + (event.deltaY < 0 ? 1 : -1), x, y);
      },
      { passive: false },
    );
    window.addEventListener("keydown", (event) => {
      if (event.target.closest("input, select, textarea")) return;
      const step = 128;
      const keys = {
        ArrowLeft: () => this.panBy(step, 0),
        ArrowRight: () => this.panBy(-step, 0),
        ArrowUp: () => this.panBy(0, step),
        ArrowDown: () => this.panBy(0, -step),
        "+": () => this.setZoom(this.zoom + 1, this.width / 2, this.height / 2),
        "=": () => this.setZoom(this.zoom + 1, this.width / 2, this.height / 2),
        "-": () => this.setZoom(this.zoom - 1, this.width / 2, this.height / 2),
      };
      if (event.key === " ") {
        this.spaceHeld = true;
        el.classList.add("pan-ready");
        event.preventDefault();
      } else if (keys[event.key]) {
        keys[event.key]();
        event.preventDefault();
      }
    });
    window.addEventListener("keyup", (event) => {
      if (event.key === " ") {
        this.spaceHeld = false;
        el.classList.remove("pan-ready");
      }
    });
  }

  showDragBox(x0, y0, x1, y1) {
    const box = this.dragBox;
    box.setAttribute("x", Math.min(x0, x1));
    box.setAttribute("y", Math.min(y0, y1));
    box.setAttribute("width", Math.abs(x1 - x0));
    box.setAttribute("height", Math.abs(y1 - y0));
    box.setAttribute("visibility", "visible");
  }
}
