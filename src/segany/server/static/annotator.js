// Assisted-manual annotation (SAM's data engine, first stage): points and a box placed on the
// image, the model's three candidate masks after every edit, and a hover preview before the
// first prompt (the SAM web demo's idea).
//
// Mouse: left click includes a point, right click (or Alt + left click) excludes one, a left
// drag draws the box. Every edit asks POST /predict with all the prompts, multimask on, and
// the "previous" token of the answer it was made from (its low-res logits are fed back).

import { ApiError } from "./api.js";
import { LatestOnly } from "./latest.js";
import { renderMasks } from "./masklayer.js";
import { EXCLUDE, INCLUDE, PromptHistory } from "./prompts.js";

const DRAG_PX = 5; // a left press that moves further than this (CSS px) draws a box
const HOVER_DELAY_MS = 60;
const CANDIDATE_STYLE = { color: "#1e90ff", fill: 0.45, edge: 1 };
const HOVER_STYLE = { color: "#7fd3ff", fill: 0.35, edge: 0.9 };

export class Annotator {
  /**
   * @param {{api: import("./api.js").Api, viewer: import("./viewer.js").Viewer,
   *          accept: (mask: object, source: string) => Promise<void>,
   *          onChange: () => void, onEncoded: (image: object) => void}} options
   *   accept: creates the annotation; onChange: prompts, candidates or hover changed;
   *   onEncoded: the server answered a prediction for an image, so it is encoded now.
   */
  constructor({ api, viewer, accept, onChange = () => {}, onEncoded = () => {} }) {
    this.api = api;
    this.viewer = viewer;
    this.acceptMask = accept;
    this.onChange = onChange;
    this.onEncoded = onEncoded;
    this.image = null; // ImageItem
    this.history = new PromptHistory();
    this.candidates = []; // Mask objects of the current answer, best first
    this.chosen = -1;
    this.hover = null; // the Mask under the cursor, before any prompt
    this.drag = null; // the press in progress: {button, start, current, box}
    this.hoverTimer = 0;
    this.overlays = new Set(); // the masks holding a drawn canvas
    this.predictions = 0; // answers shown so far (tests wait on it)
    this.predictor = new LatestOnly((arg, isCurrent) => this.predictTask(isCurrent));
    this.hoverer = new LatestOnly((point, isCurrent) => this.hoverTask(point, isCurrent));
    const canvas = viewer.canvas;
    canvas.addEventListener("pointerdown", (event) => this.onPointerDown(event));
    canvas.addEventListener("pointermove", (event) => this.onPointerMove(event));
    canvas.addEventListener("pointerup", (event) => this.onPointerUp(event));
    canvas.addEventListener("pointerleave", () => this.stopHover());
    canvas.addEventListener("contextmenu", (event) => event.preventDefault());
  }

  /** Start over on `image` (an ImageItem), or on nothing. */
  setImage(image) {
    this.image = image ? { ...image } : null; // our own copy: its identity marks this visit
    this.resetPrompts();
  }

  /** The list has news about the image shown (its "encoded" flag, say). */
  updateImage(item) {
    if (this.image && item && item.id === this.image.id) Object.assign(this.image, item);
  }

  resetPrompts() {
    this.predictor.cancel();
    this.stopHover();
    this.history = new PromptHistory();
    this.drag = null;
    this.showEntry();
  }

  get busy() {
    return this.predictor.busy;
  }

  get chosenMask() {
    return this.candidates[this.chosen] || null;
  }

  // ---- prompt edits ------------------------------------------------------------------------

  addPoint(x, y, label) {
    this.history.addPoint(x, y, label);
    this.promptsChanged();
  }

  setBox(box) {
    this.history.setBox(box);
    this.promptsChanged();
  }

  undo() {
    this.history.undo();
    this.promptsChanged();
  }

  redo() {
    this.history.redo();
    this.promptsChanged();
  }

  clear() {
    this.history.clear();
    this.promptsChanged();
  }

  /** Show the next (step 1) or previous (step -1) of the candidates. */
  cycle(step) {
    if (this.candidates.length < 2) return false;
    const n = this.candidates.length;
    this.chosen = (this.chosen + step + n) % n;
    this.history.current.chosen = this.chosen; // the next click refines this one
    this.changed();
    return true;
  }

  /** Accept the candidate shown as a "manual" annotation; true when there was one. */
  async accept() {
    const mask = this.chosenMask;
    if (!mask || this.busy) return false;
    const image = this.image;
    await this.acceptMask(mask, "manual");
    if (this.image === image) this.resetPrompts();
    return true;
  }

  promptsChanged() {
    this.stopHover();
    if (this.history.current.answer || this.history.empty) {
      this.predictor.cancel(); // what is in flight answers an older state
      this.showEntry();
    } else {
      this.predictor.request(null);
      this.changed(); // the new prompt is drawn at once, its masks when they come
    }
  }

  /** Show the answer kept with the current prompts (or nothing). */
  showEntry() {
    const answer = this.history.empty ? null : this.history.current.answer;
    this.candidates = answer ? answer.masks : [];
    const last = this.candidates.length - 1;
    this.chosen = last >= 0 ? Math.min(this.history.current.chosen, last) : -1;
    this.changed();
  }

  async predictTask(isCurrent) {
    const image = this.image;
    const entry = this.history.current;
    if (!image || this.history.empty) return;
    if (entry.answer) {
      // Answered while this request waited (its own request, then undo and redo).
      if (isCurrent()) this.showEntry();
      return;
    }
    const path = `/api/images/${image.id}/predict`;
    const body = this.history.requestBody();
    const plain = this.history.requestBody(false); // taken now: the prompts may change
    let answer;
    if (body.previous === null) {
      answer = await this.api.post(path, body);
    } else {
      try {
        answer = await this.api.post(path, body, { quiet: true });
      } catch (error) {
        // The earlier logits may have expired on the server: the clicks alone still work.
        if (!(error instanceof ApiError) || error.status < 400 || error.status >= 500) {
          throw this.api.surface(error);
        }
        answer = await this.api.post(path, plain);
      }
    }
    entry.answer = answer; // kept even when stale: undo to this entry shows it at once
    if (this.image !== image) return;
    if (!image.encoded) this.onEncoded(image);
    if (this.history.current === entry && isCurrent()) {
      this.predictions += 1;
      this.showEntry();
    }
  }

  // ---- hover preview -----------------------------------------------------------------------

  canHover() {
    return Boolean(this.image && this.image.encoded && this.history.empty && !this.drag);
  }

  scheduleHover(point) {
    clearTimeout(this.hoverTimer);
    if (!this.canHover() || !this.viewer.contains(point)) {
      this.stopHover();
      return;
    }
    this.hoverTimer = setTimeout(() => this.hoverer.request(point), HOVER_DELAY_MS);
  }

  stopHover() {
    clearTimeout(this.hoverTimer);
    this.hoverer.cancel();
    if (this.hover) {
      this.hover = null;
      this.changed();
    }
  }

  async hoverTask(point, isCurrent) {
    const image = this.image;
    if (!this.canHover()) return;
    const body = {
      points: [[Math.round(point.x * 100) / 100, Math.round(point.y * 100) / 100, INCLUDE]],
      box: null,
      multimask: true,
      previous: null,
      polygons: false, // the page draws the RLE
    };
    const answer = await this.api.post(`/api/images/${image.id}/predict`, body);
    if (!isCurrent() || this.image !== image || !this.canHover()) return; // stale: dropped
    this.hover = answer.masks[0] || null;
    this.changed();
  }

  // ---- pointer -----------------------------------------------------------------------------

  onPointerDown(event) {
    if (!this.image || this.viewer.isPanEvent(event) || this.drag) return;
    if (event.button !== 0 && event.button !== 2) return;
    this.viewer.canvas.focus({ preventScroll: true });
    const point = this.viewer.clientToImage(event.clientX, event.clientY);
    this.drag = {
      button: event.button,
      exclude: event.button === 2 || event.altKey,
      startClient: { x: event.clientX, y: event.clientY },
      start: point,
      current: point,
      box: false,
    };
    this.viewer.canvas.setPointerCapture(event.pointerId);
    this.stopHover();
  }

  onPointerMove(event) {
    if (this.viewer.panning) return;
    const point = this.viewer.clientToImage(event.clientX, event.clientY);
    this.pointer = point;
    if (!this.drag) {
      this.scheduleHover(point);
      return;
    }
    const moved = Math.hypot(
      event.clientX - this.drag.startClient.x,
      event.clientY - this.drag.startClient.y,
    );
    if (this.drag.button === 0 && moved > DRAG_PX) this.drag.box = true;
    this.drag.current = point;
    if (this.drag.box) this.viewer.requestDraw();
  }

  onPointerUp(event) {
    const drag = this.drag;
    if (!drag || event.button !== drag.button) return;
    this.drag = null;
    if (this.viewer.canvas.hasPointerCapture(event.pointerId)) {
      this.viewer.canvas.releasePointerCapture(event.pointerId);
    }
    const point = this.viewer.clientToImage(event.clientX, event.clientY);
    if (drag.box) {
      const box = this.clampBox(drag.start, point);
      if (box) this.setBox(box);
      else this.viewer.requestDraw();
    } else if (this.viewer.contains(drag.start)) {
      this.addPoint(drag.start.x, drag.start.y, drag.exclude ? EXCLUDE : INCLUDE);
    }
  }

  /** [x0, y0, x1, y1] of the drag, inside the image; null when nothing of it is. */
  clampBox(a, b) {
    const { width, height } = this.image;
    const x0 = Math.max(0, Math.min(a.x, b.x));
    const y0 = Math.max(0, Math.min(a.y, b.y));
    const x1 = Math.min(width, Math.max(a.x, b.x));
    const y1 = Math.min(height, Math.max(a.y, b.y));
    return x1 - x0 >= 1 && y1 - y0 >= 1 ? [x0, y0, x1, y1] : null;
  }

  // ---- drawing -----------------------------------------------------------------------------

  changed() {
    const mask = this.chosenMask;
    if (mask && !mask.overlay) {
      mask.overlay = renderMasks(this.image, [{ rle: mask.rle, style: CANDIDATE_STYLE }]);
    }
    if (this.hover && !this.hover.overlay) {
      this.hover.overlay = renderMasks(this.image, [{ rle: this.hover.rle, style: HOVER_STYLE }]);
    }
    // Only the masks on screen keep a canvas (W x H x 4 bytes each: 48 MB at 12 MP); the
    // answers kept for undo hold their RLEs and draw again when shown.
    for (const held of this.overlays) {
      if (held !== mask && held !== this.hover) held.overlay = null;
    }
    this.overlays = new Set([mask, this.hover].filter(Boolean));
    this.viewer.requestDraw();
    this.onChange();
  }

  /** The viewer layer: the candidate or the hover preview, then the prompts on top. */
  draw(context, viewer) {
    if (this.chosenMask) viewer.drawOverlay(this.chosenMask.overlay);
    else if (this.hover) viewer.drawOverlay(this.hover.overlay);
    viewer.useViewFrame();
    const { points, box } = this.history.current;
    if (box) drawBox(context, viewer, box, false);
    if (this.drag && this.drag.box) {
      const { start, current } = this.drag;
      drawBox(context, viewer, [start.x, start.y, current.x, current.y], true);
    }
    for (const point of points) {
      drawPoint(context, viewer.imageToView(point.x, point.y), point.label);
    }
  }
}

function drawBox(context, viewer, [x0, y0, x1, y1], live) {
  const a = viewer.imageToView(x0, y0);
  const b = viewer.imageToView(x1, y1);
  context.lineWidth = 2;
  context.setLineDash([]);
  context.strokeStyle = "rgba(0, 0, 0, 0.7)";
  context.strokeRect(a.x, a.y, b.x - a.x, b.y - a.y);
  context.setLineDash(live ? [6, 4] : []);
  context.strokeStyle = live ? "#ffffff" : "#ffd400";
  context.strokeRect(a.x, a.y, b.x - a.x, b.y - a.y);
  context.setLineDash([]);
}

function drawPoint(context, { x, y }, label) {
  context.beginPath();
  context.arc(x, y, 7, 0, 2 * Math.PI);
  context.fillStyle = label === INCLUDE ? "#16a34a" : "#dc2626";
  context.fill();
  context.lineWidth = 2;
  context.strokeStyle = "#ffffff";
  context.stroke();
  context.beginPath(); // a + or a - inside the dot
  context.moveTo(x - 3.5, y);
  context.lineTo(x + 3.5, y);
  if (label === INCLUDE) {
    context.moveTo(x, y - 3.5);
    context.lineTo(x, y + 3.5);
  }
  context.stroke();
}
