// A sequence's frames and their masks as the page needs them: frame images fetched with the
// token (GET /api/sequences/{id}/frames/{n}) and kept as ImageBitmaps, the most recent few only
// (a long video never fills the browser's memory); each frame's masks and prompts
// (GET .../frames/{n}/masks) kept until a prompt or a propagation changes them.
//
// Frame coordinates: pixels of the frame as served (x right, y down); every mask is a COCO RLE
// of the frame's size.

import { paletteColor, renderMasks } from "./masklayer.js";

const BITMAPS_KEPT = 24;
const MASKS_KEPT = 200;

// Strong, distinct colours for the first objects (none close to the yellows and skin tones
// that fill many frames); golden-angle hues after them.
const OBJECT_COLORS = [
  "#e6194b",
  "#1e88e5",
  "#3cb44b",
  "#f032e6",
  "#42d4f4",
  "#911eb4",
  "#f58231",
  "#469990",
  "#9a6324",
];

/** The colour of object `id` (its masks, its swatch, its timeline row). */
export function objectColor(id) {
  return OBJECT_COLORS[id - 1] || paletteColor(id);
}

export class FrameStore {
  /**
   * @param {import("./api.js").Api} api
   * @param {{id: string, width: number, height: number, frame_count: number}} sequence
   */
  constructor(api, sequence) {
    this.api = api;
    this.sequence = sequence;
    this.bitmaps = new Map(); // frame -> Promise<ImageBitmap>, oldest first
    this.masks = new Map(); // frame -> {masks, prompts}, oldest first
  }

  /** The frame's picture (an ImageBitmap), fetched once while it is among the recent ones. */
  bitmap(frame) {
    let pending = this.bitmaps.get(frame);
    if (pending) {
      this.bitmaps.delete(frame); // re-inserted: the most recent
    } else {
      const path = `/api/sequences/${this.sequence.id}/frames/${frame}`;
      pending = this.api.get(path, { as: "blob" }).then(({ blob }) => createImageBitmap(blob));
      pending.catch(() => this.bitmaps.delete(frame)); // a failed fetch is tried again later
    }
    this.bitmaps.set(frame, pending);
    while (this.bitmaps.size > BITMAPS_KEPT) {
      const [oldest, old] = this.bitmaps.entries().next().value;
      this.bitmaps.delete(oldest);
      old.then((bitmap) => bitmap.close()).catch(() => {});
    }
    return pending;
  }

  /** The frame's masks and prompts ({masks: [...], prompts: [...]}); `fresh` asks again. */
  async frameMasks(frame, { fresh = false } = {}) {
    if (!fresh && this.masks.has(frame)) return this.masks.get(frame);
    const answer = await this.api.get(`/api/sequences/${this.sequence.id}/frames/${frame}/masks`);
    this.setMasks(frame, answer);
    return answer;
  }

  /** Record a frame's masks as an answer (a prompt's) gave them. */
  setMasks(frame, answer) {
    this.masks.delete(frame);
    this.masks.set(frame, { masks: answer.masks, prompts: answer.prompts || [] });
    while (this.masks.size > MASKS_KEPT) this.masks.delete(this.masks.keys().next().value);
  }

  /** Forget the masks of every frame (a propagation rewrote them). */
  forgetMasks() {
    this.masks.clear();
  }

  close() {
    for (const pending of this.bitmaps.values()) {
      pending.then((bitmap) => bitmap.close()).catch(() => {});
    }
    this.bitmaps.clear();
    this.masks.clear();
  }
}

/**
 * The overlay of a frame's masks: every object in its colour, the selected one more opaque.
 * @returns {HTMLCanvasElement | null}
 */
export function renderFrameMasks(sequence, masks, selectedId) {
  const items = [...masks]
    .sort((a, b) => (a.object_id === selectedId) - (b.object_id === selectedId))
    .map((mask) => ({
      rle: mask.rle,
      style: {
        color: objectColor(mask.object_id),
        fill: mask.object_id === selectedId ? 0.5 : 0.35,
        edge: 0.95,
      },
    }));
  return renderMasks({ height: sequence.height, width: sequence.width }, items);
}

/** Draw the prompt points of one object (image frame): include green, exclude red. */
export function drawPoints(context, viewer, points) {
  viewer.useViewFrame();
  for (const [x, y, label] of points) {
    const at = viewer.imageToView(x, y);
    context.beginPath();
    context.arc(at.x, at.y, 5, 0, 2 * Math.PI);
    context.fillStyle = label === 1 ? "#22c55e" : "#ef4444";
    context.fill();
    context.lineWidth = 1.5;
    context.strokeStyle = "#ffffff";
    context.stroke();
  }
}
