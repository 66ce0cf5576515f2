// The prompts placed on one image, with undo and redo.
//
// Every edit (a point, a box, clearing) makes a new entry; undo and redo move between entries.
// An entry keeps the server's answer for its prompts and the candidate chosen from it, so that
// undo shows the earlier masks at once, and so that the next request can feed back the logits
// ("previous") of the candidate the person was looking at when they clicked.

/** Include / exclude labels, as the API writes them. */
export const INCLUDE = 1;
export const EXCLUDE = 0;

export class PromptHistory {
  constructor() {
    // entry: {points: [{x, y, label}], box: [x0, y0, x1, y1] | null, answer: object | null,
    //         chosen: index of the candidate shown, parent: the entry this one was edited from}
    this.entries = [{ points: [], box: null, answer: null, chosen: 0, parent: null }];
    this.index = 0;
  }

  get current() {
    return this.entries[this.index];
  }

  get empty() {
    return this.current.points.length === 0 && this.current.box === null;
  }

  get canUndo() {
    return this.index > 0;
  }

  get canRedo() {
    return this.index < this.entries.length - 1;
  }

  /** Add a point (x, y in image pixels; label INCLUDE or EXCLUDE). */
  addPoint(x, y, label) {
    const { points, box } = this.current;
    this.push({ points: [...points, { x, y, label }], box });
  }

  /** Set the box (x0, y0, x1, y1 in image pixels, x0 <= x1, y0 <= y1); one box at a time. */
  setBox(box) {
    this.push({ points: this.current.points, box });
  }

  /** Remove every prompt (an edit like any other: undo brings them back). */
  clear() {
    if (!this.empty) this.push({ points: [], box: null });
  }

  push({ points, box }) {
    const parent = this.current;
    this.entries = this.entries.slice(0, this.index + 1);
    this.entries.push({ points, box, answer: null, chosen: 0, parent });
    this.index = this.entries.length - 1;
  }

  undo() {
    if (this.canUndo) this.index -= 1;
  }

  redo() {
    if (this.canRedo) this.index += 1;
  }

  /**
   * The "previous" token to send with the current entry's request: that of the nearest
   * ancestor with an answer and prompts (a cleared state starts afresh), or null. The server
   * feeds back the best candidate's logits for "TOKEN" and candidate i's for "TOKEN.i".
   */
  previousToken() {
    let entry = this.current.parent;
    while (entry) {
      if (entry.points.length === 0 && entry.box === null) return null;
      if (entry.answer) {
        const token = entry.answer.previous;
        return entry.chosen > 0 ? `${token}.${entry.chosen}` : token;
      }
      entry = entry.parent;
    }
    return null;
  }

  /**
   * The request body of POST /api/images/{id}/predict for the current entry.
   * @param {boolean} withPrevious false: without the earlier logits (they may have expired)
   */
  requestBody(withPrevious = true) {
    const { points, box } = this.current;
    return {
      points: points.map((p) => [round2(p.x), round2(p.y), p.label]),
      box: box ? box.map(round2) : null,
      multimask: true,
      previous: withPrevious ? this.previousToken() : null,
      polygons: false, // the page draws the RLE: the outlines would only cost time
    };
  }
}

function round2(value) {
  return Math.round(value * 100) / 100;
}
