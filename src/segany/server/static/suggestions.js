// Semi-automatic mode (SAM's data engine, second stage): the model proposes masks (a job:
// POST /api/images/{id}/auto/jobs, then GET /api/auto/jobs/{job} shows its progress until the
// masks come; DELETE cancels it), they are drawn hatched as suggestions, and the person accepts
// or rejects them one by one or all at once; accepted ones become "semi-auto" annotations.
// What the model missed is then added with clicks, as in the manual stage.

import { ApiError, ignoreReported } from "./api.js";
import { renderMasks } from "./masklayer.js";

const SUGGESTION_COLOR = "#ff2fb9"; // not a palette colour: suggestions never look accepted
const FOCUS_COLOR = "#ffe135";
const POLL_MS = 400; // how often a running Auto job is asked for its progress

export class SuggestionPanel {
  /**
   * @param {{api: import("./api.js").Api, root: HTMLElement,
   *          accept: (mask: object, source: string) => Promise<void>,
   *          onChange: () => void}} options
   *   root holds [data-testid=suggestion-list] and the accept-all / reject-all buttons;
   *   accept(mask, source) creates the annotation and adds it to the image's list.
   */
  constructor({ api, root, accept, onChange = () => {} }) {
    this.api = api;
    this.root = root;
    this.accept = accept;
    this.onChange = onChange;
    this.listElement = root.querySelector("[data-testid=suggestion-list]");
    this.image = null;
    this.masks = []; // proposals not yet accepted or rejected, best first
    this.focused = -1; // index into masks, highlighted on the canvas
    this.overlay = null;
    this.focusOverlay = null;
    this.running = false;
    this.job = null; // the running Auto job's {id, done_steps, total_steps}
    this.ticket = 0;
    root.querySelector("[data-testid=accept-all]").addEventListener("click", () => {
      this.acceptAll().catch(ignoreReported);
    });
    root.querySelector("[data-testid=reject-all]").addEventListener("click", () => this.clear());
  }

  /** Forget the suggestions (another image, or reject all). */
  reset(image) {
    this.cancel(true).catch(() => {}); // nobody waits for the old image's proposals any more
    this.ticket += 1;
    this.image = image;
    this.running = false;
    this.clear();
  }

  clear() {
    this.masks = [];
    this.focused = -1;
    this.refresh();
  }

  /** Ask the server for proposals on the current image: start a job, follow its progress. */
  async run() {
    if (!this.image || this.running) return;
    const ticket = ++this.ticket;
    const image = this.image;
    this.running = true;
    this.onChange();
    try {
      let job = await this.api.post(`/api/images/${image.id}/auto/jobs`);
      while (job.state === "queued" || job.state === "running") {
        if (ticket !== this.ticket) return;
        this.job = job;
        this.showRunning();
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        job = await this.api.get(`/api/auto/jobs/${job.id}`);
      }
      if (ticket !== this.ticket || job.state === "cancelled") return;
      if (job.state === "failed") {
        throw this.api.surface(new ApiError(`Auto failed: ${job.error}`, 500));
      }
      this.masks = job.masks.map((mask, index) => ({ ...mask, key: index + 1 }));
      this.focused = this.masks.length ? 0 : -1;
    } finally {
      if (ticket === this.ticket) {
        this.running = false;
        this.job = null;
        this.refresh();
      }
    }
  }

  /** Stop the running Auto job (the server stops it at its next slice); `quiet`: a failure
   * is not shown. */
  async cancel(quiet = false) {
    const job = this.job;
    if (!job) return;
    this.job = null;
    this.ticket += 1;
    this.running = false;
    this.refresh();
    await this.api.request("DELETE", `/api/auto/jobs/${job.id}`, { quiet });
  }

  /** The panel while a job runs: shown, its summary with the progress (the rows stay). */
  showRunning() {
    this.root.hidden = false;
    this.root.classList.add("running");
    this.root.querySelector(".summary").textContent = `finding proposals… ${this.progress}`;
    this.onChange();
  }

  /** "12/40" while a job runs (slices done of all), else "". */
  get progress() {
    return this.job && this.job.total_steps
      ? `${this.job.done_steps}/${this.job.total_steps}`
      : "";
  }

  focus(index) {
    if (index === this.focused) return;
    this.focused = index;
    this.refresh(false);
  }

  /** Accept suggestion `index` (default: the focused one) as a "semi-auto" annotation. */
  async acceptOne(index = this.focused) {
    const mask = this.masks[index];
    if (!mask) return;
    const ticket = this.ticket;
    await this.accept(mask, "semi-auto");
    if (ticket !== this.ticket) return;
    this.drop(mask);
  }

  rejectOne(index = this.focused) {
    const mask = this.masks[index];
    if (mask) this.drop(mask);
  }

  async acceptAll() {
    const ticket = this.ticket;
    // One at a time: the annotations keep the proposals' order (best first), and one failure
    // stops the rest, leaving them on screen to retry.
    for (const mask of [...this.masks]) {
      await this.accept(mask, "semi-auto");
      if (ticket !== this.ticket) return;
      this.drop(mask);
    }
  }

  drop(mask) {
    const index = this.masks.indexOf(mask);
    if (index < 0) return;
    this.masks.splice(index, 1);
    if (this.focused >= this.masks.length) this.focused = this.masks.length - 1;
    this.refresh();
  }

  /** Redraw; `rebuild`: the set of suggestions changed, not only the focused one. */
  refresh(rebuild = true) {
    if (rebuild) this.render();
    this.markFocus();
    if (rebuild) {
      // Drawn in reverse so that the best proposals lie on top where they overlap.
      const items = [...this.masks].reverse().map((mask) => ({
        rle: mask.rle,
        style: { color: SUGGESTION_COLOR, fill: 0.3, edge: 0.75, stripes: true },
      }));
      this.overlay = this.image ? renderMasks(this.image, items) : null;
    }
    const focused = this.masks[this.focused];
    this.focusOverlay =
      focused && this.image
        ? renderMasks(this.image, [
            { rle: focused.rle, style: { color: FOCUS_COLOR, fill: 0.55, edge: 1 } },
          ])
        : null;
    this.onChange();
  }

  draw(context, viewer) {
    viewer.drawOverlay(this.overlay);
    viewer.drawOverlay(this.focusOverlay);
  }

  render() {
    this.root.hidden = this.masks.length === 0 && !this.running;
    this.root.classList.toggle("running", this.running);
    this.root.querySelector(".summary").textContent = this.running
      ? `finding proposals… ${this.progress}`
      : `${this.masks.length} to review`;
    const rows = this.masks.map((mask) => {
      const row = document.createElement("li");
      row.className = "suggestion-item";
      row.dataset.testid = "suggestion-item";
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = `#${mask.key}`;
      const score = document.createElement("span");
      score.className = "score";
      score.textContent = `${mask.score.toFixed(2)} · ${mask.area} px`;
      score.title = `predicted IoU ${mask.score.toFixed(3)}, stability ${
        mask.stability === undefined ? "?" : mask.stability.toFixed(3)
      }`;
      const yes = button("✓", "Accept this suggestion", "suggestion-accept", () =>
        this.acceptOne(this.masks.indexOf(mask)).catch(ignoreReported),
      );
      const no = button("✕", "Reject this suggestion", "suggestion-reject", () =>
        this.rejectOne(this.masks.indexOf(mask)),
      );
      row.append(label, score, yes, no);
      row.addEventListener("mouseenter", () => this.focus(this.masks.indexOf(mask)));
      row.addEventListener("click", () => this.focus(this.masks.indexOf(mask)));
      return row;
    });
    this.listElement.replaceChildren(...rows);
  }

  /** Highlight the focused row (the rows stay: a click must not land on a replaced one). */
  markFocus() {
    [...this.listElement.children].forEach((row, index) => {
      row.classList.toggle("focused", index === this.focused);
    });
  }
}

function button(text, title, testid, onClick) {
  const node = document.createElement("button");
  node.type = "button";
  node.className = "icon";
  node.textContent = text;
  node.title = title;
  node.dataset.testid = testid;
  node.addEventListener("click", (event) => {
    event.stopPropagation();
    onClick();
  });
  return node;
}
