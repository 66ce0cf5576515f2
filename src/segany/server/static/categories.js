// The category panel: the project's categories, the current one (keys 1-9 pick the first
// nine), and a form to add a new one.

import { paletteColor } from "./masklayer.js";
import { ignoreReported } from "./api.js";

export class CategoryPanel {
  /**
   * @param {{api: import("./api.js").Api, root: HTMLElement,
   *          onChange: (listChanged: boolean) => void}} options
   *   root holds [data-testid=category-list] and the form [data-testid=category-form];
   *   onChange(false): another current category, onChange(true): the categories changed.
   */
  constructor({ api, root, onChange = () => {} }) {
    this.api = api;
    this.onChange = onChange;
    this.listElement = root.querySelector("[data-testid=category-list]");
    this.form = root.querySelector("[data-testid=category-form]");
    this.nameInput = this.form.querySelector("[data-testid=category-name]");
    this.colorInput = this.form.querySelector("[data-testid=category-color]");
    this.categories = [];
    this.currentId = null;
    this.colorInput.value = paletteColor(1);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.addFromForm().catch(ignoreReported);
    });
  }

  async load() {
    this.categories = await this.api.get("/api/categories");
    if (!this.byId(this.currentId)) this.currentId = this.categories[0]?.id ?? null;
    this.colorInput.value = paletteColor(this.categories.length + 1);
    this.render(true);
  }

  byId(id) {
    return this.categories.find((category) => category.id === id) || null;
  }

  /** The colour masks of category `id` are drawn in (a palette colour without a category). */
  colorOf(id) {
    const category = this.byId(id);
    return category?.color || paletteColor(id ?? 0);
  }

  nameOf(id) {
    return this.byId(id)?.name ?? "no category";
  }

  /** Make the category at position `index` (0-based) the current one. */
  pick(index) {
    const category = this.categories[index];
    if (!category) return false;
    this.choose(category.id);
    return true;
  }

  choose(id) {
    this.currentId = id;
    this.render(false);
  }

  async addFromForm() {
    const name = this.nameInput.value.trim();
    if (!name) {
      this.nameInput.focus();
      return;
    }
    const category = await this.api.post("/api/categories", {
      name,
      color: this.colorInput.value,
    });
    this.categories.push(category);
    this.currentId = category.id;
    this.nameInput.value = "";
    this.colorInput.value = paletteColor(this.categories.length + 1);
    // Back to the shortcuts: Enter should accept a mask, not press "Add" again.
    if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
    this.render(true);
  }

  render(listChanged) {
    const rows = this.categories.map((category, index) => {
      const row = document.createElement("li");
      row.className = "category-item";
      row.dataset.testid = "category-item";
      row.dataset.categoryId = String(category.id);
      row.classList.toggle("selected", category.id === this.currentId);
      const key = document.createElement("kbd");
      key.textContent = index < 9 ? String(index + 1) : "";
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = this.colorOf(category.id);
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = category.name;
      row.append(key, swatch, name);
      row.addEventListener("click", () => this.choose(category.id));
      return row;
    });
    this.listElement.replaceChildren(...rows);
    this.onChange(listChanged);
  }
}
