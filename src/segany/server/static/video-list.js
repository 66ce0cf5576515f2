// The project's sequences (videos and volumes): the list, upload, and which one is open.

import { ignoreReported } from "./api.js";

export class SequenceList {
  /**
   * @param {{api: import("./api.js").Api, root: HTMLElement,
   *          onSelect: (item: object) => void}} options
   *   root holds [data-testid=sequence-list], [data-testid=sequence-upload] and
   *   [data-testid=sequence-upload-progress].
   */
  constructor({ api, root, onSelect }) {
    this.api = api;
    this.onSelect = onSelect;
    this.listElement = root.querySelector("[data-testid=sequence-list]");
    this.uploadInput = root.querySelector("[data-testid=sequence-upload]");
    this.uploading = root.querySelector("[data-testid=sequence-upload-progress]");
    this.items = [];
    this.selectedId = null;
    this.uploadInput.addEventListener("change", () => this.uploadChosen());
  }

  async refresh() {
    const answer = await this.api.get("/api/sequences");
    this.items = answer.sequences;
    this.render();
  }

  byId(id) {
    return this.items.find((item) => item.id === id) || null;
  }

  select(id) {
    const item = this.byId(id);
    if (!item) return;
    this.selectedId = id;
    this.render();
    this.onSelect(item);
  }

  async uploadChosen() {
    const [file] = this.uploadInput.files;
    this.uploadInput.value = ""; // the same file chosen again fires "change" again
    if (!file) return;
    this.uploading.hidden = false;
    try {
      const item = await this.api.upload("/api/sequences", file);
      await this.refresh();
      this.select(item.id);
    } catch (error) {
      ignoreReported(error);
    } finally {
      this.uploading.hidden = true;
    }
  }

  render() {
    this.listElement.replaceChildren(...this.items.map((item) => this.row(item)));
    if (this.items.length === 0) {
      const hint = document.createElement("li");
      hint.className = "empty-hint";
      hint.textContent =
        "No video or volume yet: Upload one (mp4, webm, avi, mov, mkv, multi-page TIFF, " +
        "NIfTI, or a zip of frames or of a DICOM series).";
      this.listElement.append(hint);
    }
  }

  row(item) {
    const row = document.createElement("li");
    row.className = "sequence-item";
    row.dataset.testid = "sequence-item";
    row.dataset.sequenceId = item.id;
    row.tabIndex = 0;
    row.classList.toggle("selected", item.id === this.selectedId);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = item.name;
    const meta = document.createElement("span");
    meta.className = "meta muted";
    const unit = item.kind === "volume" ? "slices" : "frames";
    meta.textContent = `${item.frame_count} ${unit}`;
    row.title = `${item.name}: ${item.kind}, ${item.frame_count} ${unit} of ${item.width} × ${item.height}`;
    row.append(name, meta);
    row.addEventListener("click", () => this.select(item.id));
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.stopPropagation();
        this.select(item.id);
      }
    });
    return row;
  }
}
