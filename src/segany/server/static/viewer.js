// The image on a canvas: zoom (wheel, around the cursor), pan (middle button, or Space + left
// button), and layers drawn with the image's transform.
//
// Frames: "client" is the browser's CSS pixels (MouseEvent.clientX), "view" is CSS pixels
// relative to the canvas' top-left corner, "image" is pixels of the image as served by
// /api/images/{id}/file (x right, y down, pixel (i, j) covers [i, i + 1) x [j, j + 1)).
// view = image * scale + (tx, ty); the canvas' backing store adds devicePixelRatio.

const MIN_SCALE = 1 / 64;
const MAX_SCALE = 64;

export class Viewer {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{onChange?: (view: {scale: number, tx: number, ty: number}) => void}} options
   */
  constructor(canvas, { onChange = () => {} } = {}) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.onChange = () => {}; // from the end of the constructor on
    this.image = null; // an HTMLImageElement or ImageBitmap
    this.view = { scale: 1, tx: 0, ty: 0 };
    this.fitted = true; // untouched since fit(): a resized window fits the image again
    this.layers = []; // functions (context, viewer) called after the image, in order
    this.spaceHeld = false;
    this.pan = null; // {x, y} client position of the last pan event while panning
    this.frame = 0;
    new ResizeObserver(() => this.resize()).observe(canvas.parentElement);
    canvas.addEventListener("wheel", (event) => this.onWheel(event), { passive: false });
    canvas.addEventListener("pointerdown", (event) => this.onPanStart(event));
    canvas.addEventListener("pointermove", (event) => this.onPanMove(event));
    canvas.addEventListener("pointerup", (event) => this.onPanEnd(event));
    canvas.addEventListener("pointercancel", (event) => this.onPanEnd(event));
    canvas.addEventListener("auxclick", (event) => event.preventDefault()); // middle-click paste
    window.addEventListener("keydown", (event) => {
      // Space on a focused button or link presses it, as usual.
      const onControl = event.target instanceof Element && event.target.closest("button, a");
      if (event.code === "Space" && !isTyping(event.target) && !onControl) {
        event.preventDefault(); // no page scroll
        this.spaceHeld = true;
        this.updateCursor();
      }
    });
    window.addEventListener("keyup", (event) => {
      if (event.code === "Space") {
        this.spaceHeld = false;
        this.updateCursor();
      }
    });
    window.addEventListener("blur", () => {
      this.spaceHeld = false;
      this.updateCursor();
    });
    this.resize();
    this.onChange = onChange;
  }

  /** Show `image` (or nothing), fitted to the canvas. */
  setImage(image) {
    this.image = image;
    this.fit();
  }

  /** Zoom and centre so that the whole image is in view. */
  fit() {
    const { width, height } = this.cssSize();
    if (this.image && width > 0 && height > 0) {
      const scale = Math.min(width / this.image.width, height / this.image.height) * 0.98;
      this.view = {
        scale,
        tx: (width - this.image.width * scale) / 2,
        ty: (height - this.image.height * scale) / 2,
      };
    } else {
      this.view = { scale: 1, tx: 0, ty: 0 };
    }
    this.fitted = true;
    this.changed();
  }

  cssSize() {
    const rect = this.canvas.getBoundingClientRect();
    return { width: rect.width, height: rect.height };
  }

  resize() {
    const { width, height } = this.cssSize();
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(width * ratio));
    const h = Math.max(1, Math.round(height * ratio));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
      if (this.fitted) this.fit();
    }
    this.draw();
  }

  /** Client (CSS) coordinates of an event -> image pixels (floats). */
  clientToImage(clientX, clientY) {
    const rect = this.canvas.getBoundingClientRect();
    const { scale, tx, ty } = this.view;
    return { x: (clientX - rect.left - tx) / scale, y: (clientY - rect.top - ty) / scale };
  }

  /** Image pixels -> view coordinates (CSS pixels from the canvas' top-left corner). */
  imageToView(x, y) {
    const { scale, tx, ty } = this.view;
    return { x: x * scale + tx, y: y * scale + ty };
  }

  /** Whether image point (x, y) is on the image. */
  contains(point) {
    return (
      this.image !== null &&
      point.x >= 0 &&
      point.y >= 0 &&
      point.x < this.image.width &&
      point.y < this.image.height
    );
  }

  /** Zoom by `factor` keeping the image point under view point (vx, vy) in place. */
  zoomAt(vx, vy, factor) {
    const { scale, tx, ty } = this.view;
    const next = Math.min(MAX_SCALE, Math.max(MIN_SCALE, scale * factor));
    const k = next / scale;
    this.view = { scale: next, tx: vx - (vx - tx) * k, ty: vy - (vy - ty) * k };
    this.fitted = false;
    this.changed();
  }

  onWheel(event) {
    event.preventDefault();
    const rect = this.canvas.getBoundingClientRect();
    // Pixel-mode wheels give ~100 per notch, line-mode ~3: one notch zooms by about 1.2 either way.
    const delta = event.deltaMode === 1 ? event.deltaY * 33 : event.deltaY;
    const factor = Math.exp(-delta * 0.0018);
    this.zoomAt(event.clientX - rect.left, event.clientY - rect.top, factor);
  }

  /** Whether `event` (a pointerdown) starts a pan rather than a prompt. */
  isPanEvent(event) {
    return event.button === 1 || (event.button === 0 && this.spaceHeld);
  }

  onPanStart(event) {
    if (!this.isPanEvent(event)) return;
    event.preventDefault();
    this.pan = { x: event.clientX, y: event.clientY };
    this.canvas.setPointerCapture(event.pointerId);
    this.updateCursor();
  }

  onPanMove(event) {
    if (!this.pan) return;
    this.view = {
      ...this.view,
      tx: this.view.tx + event.clientX - this.pan.x,
      ty: this.view.ty + event.clientY - this.pan.y,
    };
    this.pan = { x: event.clientX, y: event.clientY };
    this.fitted = false;
    this.changed();
  }

  onPanEnd(event) {
    if (!this.pan) return;
    this.pan = null;
    if (this.canvas.hasPointerCapture(event.pointerId)) {
      this.canvas.releasePointerCapture(event.pointerId);
    }
    this.updateCursor();
  }

  get panning() {
    return this.pan !== null;
  }

  updateCursor() {
    this.canvas.style.cursor = this.pan ? "grabbing" : this.spaceHeld ? "grab" : "crosshair";
  }

  changed() {
    this.onChange(this.view);
    this.requestDraw();
  }

  /** Draw at the next animation frame (many changes in one frame draw once). */
  requestDraw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  /** Set the context's transform to the image frame (1 unit = 1 image pixel). */
  useImageFrame() {
    const ratio = window.devicePixelRatio || 1;
    const { scale, tx, ty } = this.view;
    this.context.setTransform(ratio * scale, 0, 0, ratio * scale, ratio * tx, ratio * ty);
    // Past 2 screen pixels per image pixel, show the pixels rather than a blur.
    this.context.imageSmoothingEnabled = scale < 2;
  }

  /** Set the context's transform to the view frame (1 unit = 1 CSS pixel). */
  useViewFrame() {
    const ratio = window.devicePixelRatio || 1;
    this.context.setTransform(ratio, 0, 0, ratio, 0, 0);
  }

  draw() {
    const context = this.context;
    context.setTransform(1, 0, 0, 1, 0, 0);
    context.clearRect(0, 0, this.canvas.width, this.canvas.height);
    if (!this.image) return;
    this.useImageFrame();
    context.drawImage(this.image, 0, 0);
    for (const layer of this.layers) {
      context.save();
      layer(context, this);
      context.restore();
    }
  }

  /** Draw an image-sized canvas (a mask layer) exactly over the image. */
  drawOverlay(overlay, alpha = 1) {
    if (!overlay) return;
    this.useImageFrame();
    this.context.globalAlpha = alpha;
    this.context.drawImage(overlay, 0, 0);
    this.context.globalAlpha = 1;
  }
}

/** Whether keyboard input goes to a text field (so that keys are not shortcuts). */
export function isTyping(target) {
  if (!(target instanceof HTMLElement)) return false;
  const tag = target.tagName;
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
}
