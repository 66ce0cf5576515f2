// The annotator page: wires the panels together, the toolbar and the keys, and publishes
// `window.seganyState` (see state.js).

import { AnnotationPanel } from "./annotations.js";
import { Annotator } from "./annotator.js";
import { Api, ignoreReported } from "./api.js";
import { CategoryPanel } from "./categories.js";
import { exportProject } from "./exporter.js";
import { bindKeys } from "./keyboard.js";
import { ImageList } from "./list.js";
import { MessageBar } from "./messages.js";
import { askUserName, storedUser, takeToken } from "./session.js";
import { publishState } from "./state.js";
import { SuggestionPanel } from "./suggestions.js";
import { Viewer } from "./viewer.js";

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

const messages = new MessageBar($("message-bar"));
window.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  if (event.reason && event.reason.reported) return; // shown already
  messages.error(`unexpected error: ${event.reason?.message ?? event.reason}`);
});
window.addEventListener("error", (event) => {
  messages.error(`unexpected error: ${event.message}`);
});

let user = storedUser();
const api = new Api({ token: takeToken(), user: () => user, report: (m) => messages.error(m) });
const userDialog = $("user-dialog");

let current = null; // the ImageItem shown
let imageLoaded = false;
let opening = 0; // drops images that arrive after another one was chosen

const viewer = new Viewer($("canvas"), { onChange: () => updateStatus() });
const categories = new CategoryPanel({
  api,
  root: $("category-panel"),
  onChange: (listChanged) => {
    if (listChanged) annotations.refresh(); // names and colours in the annotation list
    updateStatus();
  },
});
const annotations = new AnnotationPanel({
  api,
  root: $("annotation-panel"),
  categories,
  onChange: () => {
    viewer.requestDraw();
    syncCount();
  },
});
const annotator = new Annotator({
  api,
  viewer,
  accept: createAnnotation,
  onChange: () => updateToolbar(),
  onEncoded: (image) => list.update({ id: image.id, encoded: true }),
});
const suggestions = new SuggestionPanel({
  api,
  root: $("suggestion-panel"),
  accept: createAnnotation,
  onChange: () => {
    viewer.requestDraw();
    updateToolbar();
  },
});
const list = new ImageList({
  api,
  root: $("image-panel"),
  onSelect: (item) => openImage(item).catch(ignoreReported),
  onChange: () => {
    const item = current && list.byId(current.id);
    if (item) {
      annotator.updateImage(item);
      $("reviewed-toggle").checked = item.reviewed;
    }
  },
});
viewer.layers = [
  (context, v) => annotations.draw(context, v),
  (context, v) => suggestions.draw(context, v),
  (context, v) => annotator.draw(context, v),
];

/** Create an annotation from a Mask of /predict or /auto with the current category. */
async function createAnnotation(mask, source) {
  const image = current;
  const annotation = await api.post(`/api/images/${image.id}/annotations`, {
    rle: mask.rle,
    category_id: categories.currentId,
    source,
    accepted: true,
    score: typeof mask.score === "number" ? mask.score : null,
  });
  if (annotations.image && annotations.image.id === image.id) annotations.add(annotation);
  else list.update({ id: image.id, annotations: (list.byId(image.id)?.annotations ?? 0) + 1 });
}

/** Keep the list's annotation count in step with the panel's. */
function syncCount() {
  if (!annotations.loaded || !annotations.image) return;
  const item = list.byId(annotations.image.id);
  const count = annotations.annotations.length;
  if (item && item.annotations !== count) list.update({ id: item.id, annotations: count });
}

async function openImage(item) {
  const ticket = ++opening;
  if (viewer.image && viewer.image.close) viewer.image.close(); // an ImageBitmap's memory
  current = item;
  imageLoaded = false;
  annotator.setImage(null);
  viewer.setImage(null); // no overlay of this image over the last one while it loads
  suggestions.reset(item);
  $("reviewed-toggle").checked = item.reviewed;
  $("image-title").textContent = `${item.file_name} · ${item.width} × ${item.height}`;
  annotations.load(item).catch(ignoreReported);
  const { blob } = await api.get(`/api/images/${item.id}/file`, { as: "blob" });
  const bitmap = await createImageBitmap(blob);
  if (ticket !== opening) {
    bitmap.close();
    return;
  }
  if (bitmap.width !== item.width || bitmap.height !== item.height) {
    // Masks come in the size the server reports; a different file would misalign them all.
    messages.error(
      `${item.file_name}: the file is ${bitmap.width} × ${bitmap.height} pixels but the ` +
        `server says ${item.width} × ${item.height}; masks would not line up`,
    );
  }
  viewer.setImage(bitmap);
  annotator.setImage(list.byId(item.id) || item);
  imageLoaded = true;
  updateToolbar();
}

function updateToolbar() {
  const mask = annotator.chosenMask;
  let info = annotator.busy ? "computing…" : "";
  if (mask) {
    const which = `mask ${annotator.chosen + 1}/${annotator.candidates.length}`;
    info = `${which} · score ${mask.score.toFixed(2)} · ${mask.area} px`;
  }
  $("candidate-info").textContent = info;
  $("undo-button").disabled = !annotator.history.canUndo;
  $("redo-button").disabled = !annotator.history.canRedo;
  $("clear-button").disabled = annotator.history.empty;
  $("accept-button").disabled = !mask;
  $("auto-button").disabled = !imageLoaded || suggestions.running;
  $("auto-button").textContent = suggestions.running ? `Auto ${suggestions.progress}…` : "Auto";
  $("auto-cancel").hidden = !suggestions.running;
  updateStatus();
}

function updateStatus() {
  const category = categories.byId(categories.currentId);
  $("current-category").textContent = category ? category.name : "no category";
  $("current-category").style.borderColor = category ? categories.colorOf(category.id) : "";
  $("zoom-info").textContent = `${Math.round(viewer.view.scale * 100)}%`;
}

async function acceptAnything() {
  if (annotator.chosenMask) {
    if (annotator.busy) messages.info("The mask is still being computed; press Enter again.");
    else await annotator.accept();
  } else if (suggestions.masks.length) {
    await suggestions.acceptOne();
  } else if (current) {
    messages.info("Nothing to accept yet: click on an object first.");
  }
}

bindKeys({
  cycle: (step) => annotator.cycle(step),
  undo: () => annotator.undo(),
  redo: () => annotator.redo(),
  clear: () => {
    if (!annotator.history.empty) annotator.clear();
    else if (annotations.selectedId !== null) annotations.select(annotations.selectedId);
  },
  accept: () => acceptAnything().catch(ignoreReported),
  pickCategory: (index) => categories.pick(index),
  remove: () => {
    if (annotations.selectedId !== null) {
      annotations.remove(annotations.selectedId).catch(ignoreReported);
      return true;
    }
    if (suggestions.masks.length) {
      suggestions.rejectOne();
      return true;
    }
    return false;
  },
  fit: () => viewer.fit(),
  nextImage: (step) => {
    const item = list.neighbour(step);
    if (item) list.select(item.id);
  },
  blocked: () => !userDialog.hidden,
});

// A clicked toolbar button gives the focus back, so that Enter accepts a mask rather than
// pressing the button again.
for (const bar of document.querySelectorAll(".toolbar, .topbar, .suggestions")) {
  bar.addEventListener("click", (event) => {
    const button = event.target instanceof Element && event.target.closest("button");
    if (button && event.detail > 0) button.blur(); // a mouse click, not Enter or Space
  });
}
$("auto-button").addEventListener("click", () => suggestions.run().catch(ignoreReported));
$("auto-cancel").addEventListener("click", () => suggestions.cancel().catch(ignoreReported));
$("undo-button").addEventListener("click", () => annotator.undo());
$("redo-button").addEventListener("click", () => annotator.redo());
$("clear-button").addEventListener("click", () => annotator.clear());
$("accept-button").addEventListener("click", () => acceptAnything().catch(ignoreReported));
$("fit-button").addEventListener("click", () => viewer.fit());
$("reviewed-toggle").addEventListener("change", async (event) => {
  const toggle = event.target;
  const image = current;
  if (!image) return;
  try {
    const item = await api.patch(`/api/images/${image.id}`, { reviewed: toggle.checked });
    list.update(item);
  } catch (error) {
    if (current === image) toggle.checked = !toggle.checked;
    ignoreReported(error);
  }
});
$("export-button").addEventListener("click", async () => {
  const button = $("export-button");
  button.disabled = true;
  try {
    const name = await exportProject(api, $("export-format").value);
    messages.info(`Exported ${name}`);
  } catch (error) {
    ignoreReported(error);
  } finally {
    button.disabled = false;
  }
});
$("user-button").addEventListener("click", async () => {
  user = await askUserName(userDialog);
  $("user-button").textContent = user;
});

publishState({
  annotator,
  annotations,
  suggestions,
  categories,
  viewer,
  messages,
  api,
  current: () => current,
  imageLoaded: () => imageLoaded,
  user: () => user,
});

async function start() {
  updateToolbar();
  const naming = user ? Promise.resolve(user) : askUserName(userDialog);
  api
    .get("/api/info")
    .then((info) => {
      $("model-name").textContent = `model ${info.model}`;
    })
    .catch(ignoreReported);
  await Promise.all([categories.load(), list.refresh()]).catch(ignoreReported);
  list.pollEncoding();
  if (list.items.length && current === null) list.select(list.items[0].id);
  user = await naming;
  $("user-button").textContent = user;
}

start();
