// Propagation as the server runs it: a job started with POST /api/sequences/{id}/propagate,
// followed (GET /api/track/jobs/{job}) with its progress in a bar, stopped with Cancel
// (DELETE). The page learns about each poll (to refresh the timeline and the frame shown) and
// about the end.

import { ignoreReported } from "./api.js";

const POLL_MS = 300;

export class Propagation {
  /**
   * @param {{api: import("./api.js").Api, progress: HTMLElement, cancel: HTMLElement,
   *          onProgress: (job: object) => void, onEnd: (job: object) => void}} options
   */
  constructor({ api, progress, cancel, onProgress, onEnd }) {
    this.api = api;
    this.progress = progress;
    this.cancelButton = cancel;
    this.onProgress = onProgress;
    this.onEnd = onEnd;
    this.job = null; // the last job's view
    this.ticket = 0; // polls of an older job stop
    this.cancelButton.addEventListener("click", () => this.cancel().catch(ignoreReported));
  }

  get running() {
    return Boolean(this.job && (this.job.state === "queued" || this.job.state === "running"));
  }

  /** Start propagating `sequenceId` (start null: the server's default) and follow it. */
  async start(sequenceId, { start = null, reverse = false } = {}) {
    const job = await this.api.post(`/api/sequences/${sequenceId}/propagate`, {
      start,
      reverse,
    });
    this.follow(job);
    return job;
  }

  /** Follow a job (a new one, or one found running when the sequence was opened). */
  follow(job) {
    const ticket = ++this.ticket;
    this.job = job;
    this.show();
    const poll = async () => {
      if (ticket !== this.ticket) return;
      try {
        this.job = await this.api.get(`/api/track/jobs/${job.id}`);
      } catch (error) {
        this.job = { ...this.job, state: "failed", error: error.message };
        ignoreReported(error);
      }
      if (ticket !== this.ticket) return;
      this.show();
      this.onProgress(this.job);
      if (this.running) setTimeout(poll, POLL_MS);
      else this.onEnd(this.job);
    };
    setTimeout(poll, POLL_MS);
  }

  async cancel() {
    if (!this.running) return;
    this.job = await this.api.request("DELETE", `/api/track/jobs/${this.job.id}`);
    this.show(); // "running" until its next frame ends it: the polls say when
  }

  /** Stop following (another sequence was opened); the server's job runs on. */
  detach() {
    this.ticket += 1;
    this.job = null;
    this.show();
  }

  show() {
    const job = this.job;
    const running = this.running;
    this.progress.hidden = !job;
    this.cancelButton.hidden = !running;
    if (!job) return;
    const total = job.total_frames || 0;
    const fraction = total ? job.done_frames / total : 0;
    this.progress.querySelector(".bar").style.width = `${(100 * fraction).toFixed(1)}%`;
    const words = {
      queued: "queued…",
      running: `tracking ${job.done_frames} / ${total}`,
      done: `tracked ${job.done_frames} frames`,
      cancelled: `cancelled at ${job.done_frames} / ${total}`,
      failed: "failed",
    };
    this.progress.querySelector(".label").textContent = words[job.state] || job.state;
    this.progress.classList.toggle("busy", running);
    this.progress.dataset.state = job.state;
    this.progress.title = job.error || "";
  }
}
