// The image list: each image with its status (encoded, annotations, reviewed), upload, and the
// pre-encoding progress bar (GET /api/encoding, polled: every second while images wait to be
// encoded, every few seconds otherwise).

import { ignoreReported } from "./api.js";

const PAGE = 100;
const POLL_BUSY_MS = 1000;
const POLL_IDLE_MS = 5000;

export class ImageList {
  /**
   * @param {{api: import("./api.js").Api, root: HTMLElement,
   *          onSelect: (item: object) => void, onChange: () => void}} options
   *   root holds [data-testid=image-list], [data-testid=more-images],
   *   [data-testid=upload-input] and [data-testid=encoding-progress].
   */
  constructor({ api, root, onSelect, onChange = () => {} }) {
    this.api = api;
    this.onSelect = onSelect;
    this.onChange = onChange;
    this.listElement = root.querySelector("[data-testid=image-list]");
    this.moreButton = root.querySelector("[data-testid=more-images]");
    this.uploadInput = root.querySelector("[data-testid=upload-input]");
    this.progress = root.querySelector("[data-testid=encoding-progress]");
    this.items = [];
    this.rows = new Map(); // image id -> its <li>
    this.total = 0;
    this.selectedId = null;
    this.lastEncoded = -1;
    this.moreButton.addEventListener("click", () => this.loadMore().catch(ignoreReported));
    this.uploadInput.addEventListener("change", () => this.uploadChosen());
  }

  /** Reload every image loaded so far (at least the first page). */
  async refresh() {
    const wanted = Math.max(PAGE, this.items.length);
    const items = [];
    let total = 0;
    for (let offset = 0; offset < wanted; offset += PAGE) {
      const page = await this.api.get(`/api/images?offset=${offset}&limit=${PAGE}`);
      total = page.total;
      items.push(...page.images);
      if (page.images.length < PAGE) break;
    }
    this.items = items;
    this.total = total;
    this.render();
  }

  async loadMore() {
    const page = await this.api.get(`/api/images?offset=${this.items.length}&limit=${PAGE}`);
    this.total = page.total;
    this.items.push(...page.images);
    this.render();
  }

  byId(id) {
    return this.items.find((item) => item.id === id) || null;
  }

  /** Replace one image's entry (after a PATCH, or a changed annotation count). */
  update(item) {
    const index = this.items.findIndex((existing) => existing.id === item.id);
    if (index >= 0) this.items[index] = { ...this.items[index], ...item };
    this.render();
  }

  select(id) {
    const item = this.byId(id);
    if (!item) return;
    this.selectedId = id;
    this.render();
    this.onSelect(item);
  }

  /** The image `step` places after (or before) the selected one. */
  neighbour(step) {
    const index = this.items.findIndex((item) => item.id === this.selectedId);
    return this.items[index + step] || null;
  }

  /** Show the items; rows are kept by image id and updated in place (a click that lands
   * while the list refreshes still reaches its row). */
  render() {
    const rows = this.items.map((item) => {
      let row = this.rows.get(item.id);
      if (!row) {
        row = this.makeRow(item.id);
        this.rows.set(item.id, row);
      }
      this.fillRow(row, item);
      return row;
    });
    const shown = new Set(this.items.map((item) => item.id));
    for (const id of [...this.rows.keys()]) if (!shown.has(id)) this.rows.delete(id);
    rows.forEach((row, index) => {
      if (this.listElement.children[index] !== row) {
        this.listElement.insertBefore(row, this.listElement.children[index] || null);
      }
    });
    while (this.listElement.children.length > rows.length) this.listElement.lastChild.remove();
    this.moreButton.hidden = this.items.length >= this.total;
    this.onChange();
  }

  makeRow(id) {
    const row = document.createElement("li");
    row.className = "image-item";
    row.dataset.testid = "image-item";
    row.dataset.imageId = id;
    row.tabIndex = 0;
    const name = document.createElement("span");
    name.className = "name";
    const status = document.createElement("span");
    status.className = "status";
    status.append(badge("encoded"), badge("count"), badge("reviewed"));
    row.append(name, status);
    row.addEventListener("click", () => this.select(id));
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.stopPropagation();
        this.select(id);
      }
    });
    return row;
  }

  fillRow(row, item) {
    row.classList.toggle("selected", item.id === this.selectedId);
    row.title = `${item.file_name} (${item.width} x ${item.height})`;
    row.querySelector(".name").textContent = item.file_name;
    const [encoded, count, reviewed] = row.querySelectorAll(".badge");
    setBadge(encoded, item.encoded ? "●" : "○", item.encoded ? "encoded" : "not encoded");
    setBadge(count, String(item.annotations), `${item.annotations} annotations`);
    setBadge(reviewed, item.reviewed ? "✓" : "", item.reviewed ? "reviewed" : "not reviewed");
  }

  async uploadChosen() {
    const files = [...this.uploadInput.files];
    this.uploadInput.value = ""; // choosing the same file again fires "change" again
    let lastId = null;
    for (const file of files) {
      try {
        const added = await this.api.upload("/api/images", file);
        lastId = added.id;
      } catch (error) {
        ignoreReported(error); // the next file may still be fine
      }
    }
    if (lastId === null) return;
    await this.refresh();
    this.pollEncoding();
    if (this.selectedId === null) this.select(lastId);
  }

  /** Poll GET /api/encoding until the page closes; restarts the loop if called again. */
  async pollEncoding() {
    clearTimeout(this.pollTimer);
    let delay = POLL_IDLE_MS;
    try {
      const { total, encoded, pending } = await this.api.get("/api/encoding");
      this.showProgress(total, encoded, pending);
      if (pending > 0) delay = POLL_BUSY_MS;
      if (encoded !== this.lastEncoded) {
        if (this.lastEncoded >= 0) await this.refresh(); // the dots of newly encoded images
        this.lastEncoded = encoded;
      }
    } catch (error) {
      ignoreReported(error);
    }
    this.pollTimer = setTimeout(() => this.pollEncoding(), delay);
  }

  showProgress(total, encoded, pending) {
    const bar = this.progress.querySelector(".bar");
    const label = this.progress.querySelector(".label");
    const fraction = total > 0 ? encoded / total : 1;
    bar.style.width = `${(100 * fraction).toFixed(1)}%`;
    label.textContent =
      pending > 0 ? `encoding ${encoded} / ${total}` : `${encoded} / ${total} encoded`;
    this.progress.dataset.encoded = String(encoded);
    this.progress.dataset.total = String(total);
    this.progress.classList.toggle("busy", pending > 0);
  }
}

function badge(kind) {
  const node = document.createElement("span");
  node.className = `badge ${kind}`;
  node.dataset.testid = `image-${kind}`;
  return node;
}

function setBadge(node, text, title) {
  if (node.textContent !== text) node.textContent = text;
  node.title = title;
}
