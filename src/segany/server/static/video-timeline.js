// The timeline strip under the frame: one row per object, a bar in its colour over the frames
// where it has a mask, a white tick on every frame a person prompted it, and the current
// frame as a line across. Clicking (or dragging) on it goes to that frame.

import { objectColor } from "./video-frames.js";

const ROW = 14; // px per object row
const GAP = 2;
const PAD = 4;

export class Timeline {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{onSeek: (frame: number) => void}} options
   */
  constructor(canvas, { onSeek }) {
    this.canvas = canvas;
    this.onSeek = onSeek;
    this.frameCount = 0;
    this.frame = 0;
    this.objects = []; // [{object_id, ranges: [[a, b]], prompted: [..]}]
    this.selectedId = null;
    let dragging = false;
    canvas.addEventListener("pointerdown", (event) => {
      dragging = true;
      canvas.setPointerCapture(event.pointerId);
      this.seekAt(event);
    });
    canvas.addEventListener("pointermove", (event) => {
      if (dragging) this.seekAt(event);
    });
    canvas.addEventListener("pointerup", () => {
      dragging = false;
    });
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  set(timeline) {
    this.frameCount = timeline.frame_count;
    this.objects = timeline.objects;
    this.draw();
  }

  clear() {
    this.frameCount = 0;
    this.objects = [];
    this.draw();
  }

  setFrame(frame, selectedId) {
    this.frame = frame;
    this.selectedId = selectedId;
    this.draw();
  }

  /** Frames of object `id` that have a mask, as [first, last] runs. */
  ranges(id) {
    const item = this.objects.find((o) => o.object_id === id);
    return item ? item.ranges : [];
  }

  seekAt(event) {
    if (!this.frameCount) return;
    const rect = this.canvas.getBoundingClientRect();
    const fraction = (event.clientX - rect.left) / Math.max(1, rect.width);
    const frame = Math.floor(fraction * this.frameCount);
    this.onSeek(Math.max(0, Math.min(this.frameCount - 1, frame)));
  }

  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const cssWidth = canvas.getBoundingClientRect().width || 1;
    const rows = Math.max(1, this.objects.length);
    const cssHeight = PAD * 2 + rows * (ROW + GAP);
    canvas.style.height = `${cssHeight}px`;
    canvas.width = Math.round(cssWidth * ratio);
    canvas.height = Math.round(cssHeight * ratio);
    const context = canvas.getContext("2d");
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, cssWidth, cssHeight);
    if (!this.frameCount) return;
    const perFrame = cssWidth / this.frameCount;
    this.objects.forEach((item, index) => {
      const y = PAD + index * (ROW + GAP);
      context.fillStyle = item.object_id === this.selectedId ? "#e5efff" : "#f1f2f4";
      context.fillRect(0, y, cssWidth, ROW);
      context.fillStyle = objectColor(item.object_id);
      for (const [first, last] of item.ranges) {
        const width = Math.max(1, (last - first + 1) * perFrame);
        context.fillRect(first * perFrame, y + 1, width, ROW - 2);
      }
      context.fillStyle = "#ffffff";
      context.strokeStyle = "#1d2129";
      for (const frame of item.prompted) {
        const x = (frame + 0.5) * perFrame;
        context.beginPath();
        context.moveTo(x, y);
        context.lineTo(x + 4, y + ROW / 2);
        context.lineTo(x, y + ROW);
        context.lineTo(x - 4, y + ROW / 2);
        context.closePath();
        context.fill();
        context.stroke();
      }
    });
    const x = (this.frame + 0.5) * perFrame;
    context.strokeStyle = "#1e6fd9";
    context.lineWidth = 2;
    context.globalAlpha = 0.8;
    context.beginPath();
    context.moveTo(x, 0);
    context.lineTo(x, cssHeight);
    context.stroke();
  }
}
