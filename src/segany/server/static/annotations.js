// The accepted annotations of the current image: listed (selectable, category editable,
// deletable) and drawn on the canvas in their category's colour, the selected one stronger.

import { renderMasks } from "./masklayer.js";
import { ignoreReported } from "./api.js";

export class AnnotationPanel {
  /**
   * @param {{api: import("./api.js").Api, root: HTMLElement,
   *          categories: import("./categories.js").CategoryPanel,
   *          onChange: () => void}} options
   *   root holds [data-testid=annotation-list]; onChange: the list or the drawing changed.
   */
  constructor({ api, root, categories, onChange = () => {} }) {
    this.api = api;
    this.categories = categories;
    this.onChange = onChange;
    this.listElement = root.querySelector("[data-testid=annotation-list]");
    this.image = null; // the ImageItem shown
    this.annotations = [];
    this.selectedId = null;
    this.overlay = null; // image-sized canvas with every annotation
    this.loading = 0; // drops the answer of a load for an image no longer shown
    this.loaded = false; // the list holds the image's annotations (not a load in progress)
  }

  async load(image) {
    const ticket = ++this.loading;
    this.image = image;
    this.annotations = [];
    this.selectedId = null;
    this.loaded = false;
    this.refresh();
    const annotations = await this.api.get(`/api/images/${image.id}/annotations`);
    if (ticket !== this.loading) return;
    this.annotations = annotations;
    this.loaded = true;
    this.refresh();
  }

  /** Add an annotation the server has just created. */
  add(annotation) {
    this.annotations.push(annotation);
    this.refresh();
  }

  select(id) {
    this.selectedId = this.selectedId === id ? null : id;
    this.refresh();
  }

  async remove(id) {
    const image = this.image;
    await this.api.delete(`/api/images/${image.id}/annotations/${id}`);
    if (this.image !== image) return;
    this.annotations = this.annotations.filter((annotation) => annotation.id !== id);
    if (this.selectedId === id) this.selectedId = null;
    this.refresh();
  }

  async setCategory(id, categoryId) {
    const image = this.image;
    const updated = await this.api.patch(`/api/images/${image.id}/annotations/${id}`, {
      category_id: categoryId,
    });
    if (this.image !== image) return;
    this.annotations = this.annotations.map((a) => (a.id === id ? updated : a));
    this.refresh();
  }

  /** Redraw after the categories (names, colours) changed. */
  refresh() {
    this.render();
    this.rebuildOverlay();
    this.onChange();
  }

  rebuildOverlay() {
    if (!this.image) {
      this.overlay = null;
      return;
    }
    const selected = this.annotations.find((a) => a.id === this.selectedId);
    const items = this.annotations
      .filter((annotation) => annotation !== selected)
      .map((annotation) => ({
        rle: annotation.rle,
        style: {
          color: this.categories.colorOf(annotation.category_id),
          fill: selected ? 0.15 : 0.35,
          edge: selected ? 0.5 : 0.9,
        },
      }));
    if (selected) {
      items.push({
        rle: selected.rle,
        style: { color: this.categories.colorOf(selected.category_id), fill: 0.6, edge: 1 },
      });
    }
    this.overlay = renderMasks(this.image, items);
  }

  /** The viewer layer. */
  draw(context, viewer) {
    viewer.drawOverlay(this.overlay);
  }

  render() {
    const rows = this.annotations.map((annotation) => this.row(annotation));
    this.listElement.replaceChildren(...rows);
  }

  row(annotation) {
    const row = document.createElement("li");
    row.className = "annotation-item";
    row.dataset.testid = "annotation-item";
    row.dataset.annotationId = String(annotation.id);
    row.dataset.source = annotation.source;
    row.classList.toggle("selected", annotation.id === this.selectedId);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = this.categories.colorOf(annotation.category_id);
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = `#${annotation.id}`;
    label.title = `${annotation.source}, by ${annotation.author}, area ${annotation.area} px`;
    const category = document.createElement("select");
    category.dataset.testid = "annotation-category";
    category.title = "Category";
    category.append(option("", "no category"));
    for (const c of this.categories.categories) category.append(option(String(c.id), c.name));
    category.value = annotation.category_id === null ? "" : String(annotation.category_id);
    category.addEventListener("click", (event) => event.stopPropagation());
    category.addEventListener("change", () => {
      const value = category.value === "" ? null : Number(category.value);
      this.setCategory(annotation.id, value).catch(ignoreReported);
      category.blur();
    });
    const source = document.createElement("span");
    source.className = `source ${annotation.source}`;
    source.textContent = annotation.source;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "icon";
    remove.dataset.testid = "annotation-delete";
    remove.title = "Delete this annotation";
    remove.textContent = "✕";
    remove.addEventListener("click", (event) => {
      event.stopPropagation();
      this.remove(annotation.id).catch(ignoreReported);
    });
    row.append(swatch, label, category, source, remove);
    row.addEventListener("click", () => this.select(annotation.id));
    return row;
  }
}

function option(value, text) {
  const node = document.createElement("option");
  node.value = value;
  node.textContent = text;
  return node;
}
