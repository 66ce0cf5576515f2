// The objects of the open sequence: id, colour, name, category, where they are; add one,
// select one (the object a click prompts), change its category, delete it.

import { ignoreReported } from "./api.js";
import { objectColor } from "./video-frames.js";

export class ObjectPanel {
  /**
   * @param {{api: import("./api.js").Api, root: HTMLElement,
   *          onChange: (what: string) => void}} options
   *   root holds [data-testid=object-list] and [data-testid=add-object]; onChange("select"),
   *   ("list") or ("deleted") after each change.
   */
  constructor({ api, root, onChange }) {
    this.api = api;
    this.onChange = onChange;
    this.listElement = root.querySelector("[data-testid=object-list]");
    this.addButton = root.querySelector("[data-testid=add-object]");
    this.sequence = null;
    this.objects = []; // [{object_id, name, category_id}]
    this.categories = [];
    this.selectedId = null;
    this.frames = new Map(); // object id -> frames where present (from the timeline)
    this.addButton.addEventListener("click", () => this.add().catch(ignoreReported));
  }

  async load(sequence) {
    this.sequence = sequence;
    const [objects, categories] = await Promise.all([
      this.api.get(`/api/sequences/${sequence.id}/objects`),
      this.api.get("/api/categories"),
    ]);
    if (this.sequence !== sequence) return;
    this.objects = objects;
    this.categories = categories;
    if (!this.objects.some((o) => o.object_id === this.selectedId)) {
      this.selectedId = this.objects.length ? this.objects[0].object_id : null;
    }
    this.render();
    this.onChange("list");
  }

  clear() {
    this.sequence = null;
    this.objects = [];
    this.selectedId = null;
    this.render();
  }

  /** Add an object with the lowest free id and select it. */
  async add() {
    if (!this.sequence) return null;
    const created = await this.api.post(`/api/sequences/${this.sequence.id}/objects`, {});
    this.objects.push(created);
    this.objects.sort((a, b) => a.object_id - b.object_id);
    this.select(created.object_id);
    this.onChange("list");
    return created;
  }

  /** The selected object's id, adding a first object when there is none. */
  async ensureSelected() {
    if (this.selectedId === null) await this.add();
    return this.selectedId;
  }

  /** Know an object a prompt added on the server. */
  noteObject(objectId) {
    if (this.objects.some((o) => o.object_id === objectId)) return;
    this.objects.push({ object_id: objectId, name: `object ${objectId}`, category_id: null });
    this.objects.sort((a, b) => a.object_id - b.object_id);
    this.render();
  }

  select(objectId) {
    if (this.selectedId === objectId) return; // kept: a double-click reaches the same row
    this.selectedId = objectId;
    this.render();
    this.onChange("select");
  }

  /** Select the object at `index` in the list (number keys); false when there is none. */
  pick(index) {
    const item = this.objects[index];
    if (!item) return false;
    this.select(item.object_id);
    return true;
  }

  async remove(objectId) {
    await this.api.delete(`/api/sequences/${this.sequence.id}/objects/${objectId}`);
    this.objects = this.objects.filter((o) => o.object_id !== objectId);
    if (this.selectedId === objectId) {
      this.selectedId = this.objects.length ? this.objects[0].object_id : null;
    }
    this.render();
    this.onChange("deleted");
  }

  async setCategory(objectId, categoryId) {
    const path = `/api/sequences/${this.sequence.id}/objects/${objectId}`;
    const updated = await this.api.patch(path, { category_id: categoryId });
    const index = this.objects.findIndex((o) => o.object_id === objectId);
    if (index >= 0) this.objects[index] = updated;
    this.render();
  }

  async rename(objectId, name) {
    const path = `/api/sequences/${this.sequence.id}/objects/${objectId}`;
    const updated = await this.api.patch(path, { name });
    const index = this.objects.findIndex((o) => o.object_id === objectId);
    if (index >= 0) this.objects[index] = updated;
    this.render();
  }

  /** Swap the name for a text field: Enter (or leaving it) saves, Esc keeps the old name. */
  editName(node, item) {
    const input = document.createElement("input");
    input.type = "text";
    input.maxLength = 200;
    input.value = item.name;
    input.dataset.testid = "object-name-input";
    let done = false;
    const finish = (save) => {
      if (done) return;
      done = true;
      const name = input.value.trim();
      if (save && name && name !== item.name) {
        this.rename(item.object_id, name).catch(ignoreReported);
      } else this.render();
    };
    input.addEventListener("keydown", (event) => {
      event.stopPropagation(); // typing is not a shortcut
      if (event.key === "Enter") finish(true);
      else if (event.key === "Escape") finish(false);
    });
    input.addEventListener("blur", () => finish(true));
    input.addEventListener("click", (event) => event.stopPropagation());
    node.replaceWith(input);
    input.focus();
    input.select();
  }

  /** Where each object is, from the timeline: shown as a frame count. */
  setPresence(timeline) {
    this.frames = new Map();
    for (const item of timeline.objects) {
      const count = item.ranges.reduce((sum, [a, b]) => sum + b - a + 1, 0);
      this.frames.set(item.object_id, count);
    }
    this.render();
  }

  render() {
    this.listElement.replaceChildren(...this.objects.map((o) => this.row(o)));
    this.addButton.disabled = !this.sequence;
  }

  row(item) {
    const row = document.createElement("li");
    row.className = "object-item";
    row.dataset.testid = "object-item";
    row.dataset.objectId = String(item.object_id);
    row.classList.toggle("selected", item.object_id === this.selectedId);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = objectColor(item.object_id);
    const id = document.createElement("span");
    id.className = "id";
    id.textContent = `#${item.object_id}`;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = item.name;
    name.title = "Double-click to rename";
    name.addEventListener("dblclick", (event) => {
      event.stopPropagation();
      this.editName(name, item);
    });
    const present = document.createElement("span");
    present.className = "present muted";
    present.dataset.testid = "object-frames";
    const count = this.frames.get(item.object_id) || 0;
    present.textContent = `${count} fr`;
    present.title = `on ${count} frames`;
    const category = document.createElement("select");
    category.dataset.testid = "object-category";
    category.title = "Category";
    category.append(new Option("no category", ""));
    for (const c of this.categories) category.append(new Option(c.name, String(c.id)));
    category.value = item.category_id === null ? "" : String(item.category_id);
    category.addEventListener("click", (event) => event.stopPropagation());
    category.addEventListener("change", () => {
      const value = category.value === "" ? null : Number(category.value);
      this.setCategory(item.object_id, value).catch(ignoreReported);
    });
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "icon";
    remove.title = "Delete the object and its masks";
    remove.dataset.testid = "object-delete";
    remove.textContent = "✕";
    remove.addEventListener("click", (event) => {
      event.stopPropagation();
      this.remove(item.object_id).catch(ignoreReported);
    });
    row.append(swatch, id, name, present, category, remove);
    row.addEventListener("click", () => this.select(item.object_id));
    return row;
  }
}
