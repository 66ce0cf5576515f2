// The message bar: errors and notices shown without blocking the page.
//
// A message stays a while (errors longer), can be closed, and a message that repeats (a poll
// failing every few seconds) bumps a counter instead of stacking up.

const LIFETIME_MS = { error: 12000, info: 4000 };
const MAX_MESSAGES = 5;

export class MessageBar {
  /** @param {HTMLElement} element the bar's container */
  constructor(element) {
    this.element = element;
    this.shown = new Map(); // text -> {node, count, timer}
    this.errors = 0; // errors shown since the page opened (read by tests)
  }

  error(text) {
    this.errors += 1;
    this.show(text, "error");
  }

  info(text) {
    this.show(text, "info");
  }

  show(text, kind) {
    const key = `${kind}:${text}`;
    const existing = this.shown.get(key);
    if (existing) {
      existing.count += 1;
      existing.countNode.textContent = `×${existing.count}`;
      clearTimeout(existing.timer);
      existing.timer = setTimeout(() => this.remove(key), LIFETIME_MS[kind]);
      return;
    }
    const node = document.createElement("div");
    node.className = `message ${kind}`;
    node.dataset.testid = kind === "error" ? "message-error" : "message-info";
    node.setAttribute("role", kind === "error" ? "alert" : "status");
    const textNode = document.createElement("span");
    textNode.className = "text";
    textNode.textContent = text;
    const countNode = document.createElement("span");
    countNode.className = "count";
    const close = document.createElement("button");
    close.type = "button";
    close.className = "close";
    close.title = "Close";
    close.textContent = "×";
    close.addEventListener("click", () => this.remove(key));
    node.append(textNode, countNode, close);
    this.element.append(node);
    const entry = { node, countNode, count: 1, timer: 0 };
    entry.timer = setTimeout(() => this.remove(key), LIFETIME_MS[kind]);
    this.shown.set(key, entry);
    while (this.shown.size > MAX_MESSAGES) this.remove(this.shown.keys().next().value);
  }

  remove(key) {
    const entry = this.shown.get(key);
    if (!entry) return;
    clearTimeout(entry.timer);
    entry.node.remove();
    this.shown.delete(key);
  }
}
