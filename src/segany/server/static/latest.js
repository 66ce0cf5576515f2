// At most one request in flight, and only the newest wish honoured.
//
// While a task runs, further requests replace each other; when it ends, the newest one runs.
// The task is told whether its answer is still wanted (no newer request, no cancel) so that a
// stale answer is dropped instead of drawn over a newer state.

export class LatestOnly {
  /** @param {(arg: any, isCurrent: () => boolean) => Promise<void>} task */
  constructor(task) {
    this.task = task;
    this.pending = null; // {arg} of the newest request not started yet
    this.running = false;
    this.generation = 0;
  }

  /** Run the task with `arg` now, or after the one in flight (replacing any waiting one). */
  request(arg) {
    this.pending = { arg };
    if (!this.running) this.drain();
  }

  /** Forget the waiting request and mark the one in flight as stale. */
  cancel() {
    this.pending = null;
    this.generation += 1;
  }

  get busy() {
    return this.running || this.pending !== null;
  }

  async drain() {
    this.running = true;
    try {
      while (this.pending) {
        const { arg } = this.pending;
        this.pending = null;
        const generation = this.generation;
        const isCurrent = () => generation === this.generation && this.pending === null;
        try {
          await this.task(arg, isCurrent);
        } catch (error) {
          // An API error has been shown to the user; anything else is a bug, reported to the
          // page's error handler. Either way later requests are still served.
          if (!error || !error.reported) reportError(error);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
