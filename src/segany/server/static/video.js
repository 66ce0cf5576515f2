// The video and volume page: a sequence's frames (or slices) with every object's mask, a
// scrubber and keys to step through them, clicks that prompt the selected object on the frame
// shown, propagation forward and backward with progress and cancel, the timeline, export.
// Publishes `window.seganyVideo` (live getters, for tests and the curious).

import { Api, ignoreReported } from "./api.js";
import { exportProject } from "./exporter.js";
import { MessageBar } from "./messages.js";
import { askUserName, storedUser, takeToken } from "./session.js";
import { drawPoints, FrameStore, renderFrameMasks } from "./video-frames.js";
import { Propagation } from "./video-jobs.js";
import { SequenceList } from "./video-list.js";
import { ObjectPanel } from "./video-objects.js";
import { Timeline } from "./video-timeline.js";
import { isTyping, Viewer } from "./viewer.js";

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
const REPROPAGATE_AFTER_MS = 700; // a correction's clicks settle before tracking resumes

const messages = new MessageBar($("message-bar"));
window.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  if (event.reason && event.reason.reported) return;
  messages.error(`unexpected error: ${event.reason?.message ?? event.reason}`);
});

let user = storedUser();
const api = new Api({ token: takeToken(), user: () => user, report: (m) => messages.error(m) });

const page = {
  sequence: null, // the SequenceItem open
  store: null, // its FrameStore
  frame: 0, // the frame asked for
  shown: -1, // the frame whose picture is on the canvas
  masks: [], // the shown frame's masks [{object_id, rle, area, ...}]
  prompts: [], // and its prompts [{object_id, points, box}]
  overlay: null, // the masks drawn, an image-sized canvas
  predicting: 0,
  ticket: 0, // frames that arrive after another one was asked for are dropped
  repropagate: 0, // the timer of a correction's re-propagation
};

const viewer = new Viewer($("video-canvas"));
const list = new SequenceList({
  api,
  root: $("sequence-panel"),
  onSelect: (item) => openSequence(item).catch(ignoreReported),
});
const objects = new ObjectPanel({
  api,
  root: $("object-panel"),
  onChange: (what) => {
    if (what === "deleted") refreshAfterChange().catch(ignoreReported);
    redrawMasks();
    timeline.setFrame(page.frame, objects.selectedId);
  },
});
const timeline = new Timeline($("timeline"), { onSeek: (frame) => goTo(frame) });
const propagation = new Propagation({
  api,
  progress: $("propagate-progress"),
  cancel: $("propagate-cancel"),
  onProgress: () => refreshAfterChange().catch(ignoreReported),
  onEnd: (job) => {
    if (job.state === "failed") messages.error(`Propagation failed: ${job.error}`);
    refreshAfterChange().catch(ignoreReported);
    updateToolbar();
  },
});
viewer.layers = [
  (context, v) => v.drawOverlay(page.overlay),
  (context, v) => {
    const prompt = page.prompts.find((p) => p.object_id === objects.selectedId);
    if (prompt && prompt.points) drawPoints(context, v, prompt.points);
  },
];

async function openSequence(item) {
  clearTimeout(page.repropagate);
  propagation.detach();
  if (page.store) page.store.close();
  page.sequence = item;
  page.store = new FrameStore(api, item);
  page.frame = 0;
  page.shown = -1;
  page.masks = [];
  page.prompts = [];
  page.overlay = null;
  viewer.setImage(null);
  const slider = $("frame-slider");
  slider.max = String(item.frame_count - 1);
  slider.value = "0";
  const formats = $("video-export-format");
  formats.querySelector("option[value=volume]").hidden = item.kind !== "volume";
  if (item.kind !== "volume" && formats.value === "volume") formats.value = "davis";
  const unit = item.kind === "volume" ? "slices" : "frames";
  $("sequence-title").textContent =
    `${item.name} · ${item.frame_count} ${unit} of ${item.width} × ${item.height}`;
  await Promise.all([objects.load(item), refreshTimeline(), showFrame(0, { fit: true })]);
  if (item.job) propagation.follow({ id: item.job, state: "running", done_frames: 0 });
  updateToolbar();
}

/** Show frame `frame` (clamped): its picture and its masks. */
function goTo(frame) {
  if (!page.sequence) return;
  const last = page.sequence.frame_count - 1;
  showFrame(Math.max(0, Math.min(last, frame))).catch(ignoreReported);
}

async function showFrame(frame, { fit = false } = {}) {
  const ticket = ++page.ticket;
  page.frame = frame;
  $("frame-slider").value = String(frame);
  updateFrameInfo();
  timeline.setFrame(frame, objects.selectedId);
  const store = page.store;
  const [bitmap, answer] = await Promise.all([store.bitmap(frame), store.frameMasks(frame)]);
  if (ticket !== page.ticket || store !== page.store) return;
  if (fit || !viewer.image) viewer.setImage(bitmap);
  else {
    viewer.image = bitmap; // the same size: keep the zoom and pan
    viewer.requestDraw();
  }
  page.shown = frame;
  setMasks(answer);
  updateFrameInfo();
  prefetch(frame + 1);
}

function prefetch(frame) {
  if (page.sequence && frame < page.sequence.frame_count) {
    page.store.bitmap(frame).catch(() => {});
  }
}

function setMasks(answer) {
  page.masks = answer.masks;
  page.prompts = answer.prompts || [];
  for (const mask of page.masks) objects.noteObject(mask.object_id);
  redrawMasks();
}

function redrawMasks() {
  page.overlay = page.sequence
    ? renderFrameMasks(page.sequence, page.masks, objects.selectedId)
    : null;
  viewer.requestDraw();
}

async function refreshTimeline() {
  if (!page.sequence) return;
  const sequence = page.sequence;
  const answer = await api.get(`/api/sequences/${sequence.id}/timeline`);
  if (sequence !== page.sequence) return;
  timeline.set(answer);
  timeline.setFrame(page.frame, objects.selectedId);
  objects.setPresence(answer);
}

/** After a propagation step or a deletion: the timeline and the frame shown, asked again. */
async function refreshAfterChange() {
  if (!page.sequence) return;
  page.store.forgetMasks();
  const frame = page.frame;
  const sequence = page.sequence;
  const [answer] = await Promise.all([page.store.frameMasks(frame), refreshTimeline()]);
  if (sequence === page.sequence && frame === page.frame) setMasks(answer);
}

function updateFrameInfo() {
  if (!page.sequence) {
    $("frame-info").textContent = "";
    return;
  }
  // Numbered from 0, as the exported files are ("00003.png" is frame 3).
  const unit = page.sequence.kind === "volume" ? "slice" : "frame";
  const last = page.sequence.frame_count - 1;
  $("frame-info").textContent = `${unit} ${page.frame} of 0–${last}`;
}

function updateToolbar() {
  const open = Boolean(page.sequence);
  $("propagate-forward").disabled = !open || propagation.running;
  $("propagate-backward").disabled = !open || propagation.running;
  $("video-export-button").disabled = !open;
  $("add-object").disabled = !open;
}

// ---- prompts ------------------------------------------------------------------------------------

/** A click on the frame: a point for the selected object (label 1 include, 0 exclude). */
async function prompt(x, y, label) {
  if (!page.sequence || page.shown !== page.frame) return;
  const sequence = page.sequence;
  const frame = page.frame;
  const objectId = await objects.ensureSelected();
  const earlier = page.prompts.find((p) => p.object_id === objectId);
  const points = [...(earlier?.points || []), [x, y, label]];
  page.predicting += 1;
  try {
    const answer = await api.post(`/api/sequences/${sequence.id}/prompt`, {
      frame,
      object_id: objectId,
      points,
      box: earlier?.box ?? null,
    });
    if (sequence !== page.sequence) return;
    page.store.setMasks(frame, answer);
    if (frame === page.frame) setMasks(answer);
    await refreshTimeline();
    if (answer.stopped_job || isCorrection(objectId, frame)) scheduleRepropagation(frame, objectId);
  } finally {
    page.predicting -= 1;
  }
}

/** Whether the object is tracked on other frames than `frame` (so a prompt corrects it). */
function isCorrection(objectId, frame) {
  return timeline.ranges(objectId).some(([a, b]) => a !== frame || b !== frame);
}

/** Track again from a corrected frame, towards where the object was tracked before. */
function scheduleRepropagation(frame, objectId) {
  clearTimeout(page.repropagate);
  if (!$("auto-repropagate").checked) return;
  const ranges = timeline.ranges(objectId);
  const after = ranges.some(([, b]) => b > frame);
  const before = ranges.some(([a]) => a < frame);
  if (!after && !before) return;
  const sequence = page.sequence;
  page.repropagate = setTimeout(() => {
    if (sequence !== page.sequence || propagation.running) return;
    propagation
      .start(sequence.id, { start: frame, reverse: !after })
      .then(updateToolbar)
      .catch(ignoreReported);
  }, REPROPAGATE_AFTER_MS);
}

function propagate(reverse) {
  if (!page.sequence || propagation.running) return;
  clearTimeout(page.repropagate);
  // From the frame shown when it has masks to carry on; else from the server's default
  // (the first prompted frame, the last one backward).
  const start = page.masks.length ? page.frame : null;
  propagation
    .start(page.sequence.id, { start, reverse })
    .then(updateToolbar)
    .catch(ignoreReported);
}

const canvas = $("video-canvas");
canvas.addEventListener("contextmenu", (event) => event.preventDefault());
canvas.addEventListener("pointerdown", (event) => {
  if (viewer.isPanEvent(event) || (event.button !== 0 && event.button !== 2)) return;
  const point = viewer.clientToImage(event.clientX, event.clientY);
  if (!viewer.contains(point)) return;
  const label = event.button === 2 || event.shiftKey || event.altKey ? 0 : 1;
  canvas.focus();
  prompt(point.x, point.y, label).catch(ignoreReported);
});

// ---- keys, buttons, export ----------------------------------------------------------------------

window.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || isTyping(event.target) || !$("user-dialog").hidden) return;
  if (event.ctrlKey || event.metaKey || event.altKey || !page.sequence) return;
  const step = event.shiftKey ? 10 : 1;
  const key = event.key;
  let handled = true;
  if (key === "ArrowRight" || key === "." || key === ">") goTo(page.frame + step);
  else if (key === "ArrowLeft" || key === "," || key === "<") goTo(page.frame - step);
  else if (key === "Home") goTo(0);
  else if (key === "End") goTo(page.sequence.frame_count - 1);
  else if (key === "f" || key === "F") viewer.fit();
  else if (key === "p" || key === "P") propagate(false);
  else if (key === "b" || key === "B") propagate(true);
  else if (/^[1-9]$/.test(key)) handled = objects.pick(Number(key) - 1);
  else handled = false;
  if (handled) event.preventDefault();
});

$("frame-slider").addEventListener("input", (event) => goTo(Number(event.target.value)));
$("frame-previous").addEventListener("click", () => goTo(page.frame - 1));
$("frame-next").addEventListener("click", () => goTo(page.frame + 1));
$("propagate-forward").addEventListener("click", () => propagate(false));
$("propagate-backward").addEventListener("click", () => propagate(true));
$("video-fit").addEventListener("click", () => viewer.fit());
for (const bar of document.querySelectorAll(".toolbar, .topbar, .scrubber")) {
  bar.addEventListener("click", (event) => {
    const button = event.target instanceof Element && event.target.closest("button");
    if (button && event.detail > 0) button.blur(); // keys go back to the page
  });
}
$("video-export-button").addEventListener("click", async () => {
  if (!page.sequence) return;
  const button = $("video-export-button");
  button.disabled = true;
  try {
    const format = $("video-export-format").value;
    const path = `/api/sequences/${page.sequence.id}/export?format=${format}`;
    const name = await exportProject(api, format, path);
    messages.info(`Exported ${name}`);
  } catch (error) {
    ignoreReported(error);
  } finally {
    button.disabled = false;
  }
});
$("user-button").addEventListener("click", async () => {
  user = await askUserName($("user-dialog"));
  $("user-button").textContent = user;
});

window.seganyVideo = {
  get sequenceId() {
    return page.sequence ? page.sequence.id : null;
  },
  get frame() {
    return page.frame;
  },
  get shown() {
    return page.shown;
  },
  get frameCount() {
    return page.sequence ? page.sequence.frame_count : 0;
  },
  get masks() {
    return page.shown === page.frame ? page.masks.length : -1;
  },
  get maskAreas() {
    return Object.fromEntries(page.masks.map((m) => [m.object_id, m.area]));
  },
  get maskRles() {
    return Object.fromEntries(page.masks.map((m) => [m.object_id, m.rle]));
  },
  get objects() {
    return objects.objects.map((o) => o.object_id);
  },
  get selectedObject() {
    return objects.selectedId;
  },
  get predicting() {
    return page.predicting > 0;
  },
  get job() {
    return propagation.job ? { ...propagation.job } : null;
  },
  get timeline() {
    return timeline.objects.map((o) => ({ object_id: o.object_id, ranges: o.ranges }));
  },
  get view() {
    return { ...viewer.view };
  },
  get errors() {
    return messages.errors;
  },
  get requests() {
    return api.inFlight;
  },
};

async function start() {
  updateToolbar();
  const naming = user ? Promise.resolve(user) : askUserName($("user-dialog"));
  api
    .get("/api/info")
    .then((info) => {
      $("model-name").textContent = `model ${info.model}`;
    })
    .catch(ignoreReported);
  await list.refresh().catch(ignoreReported);
  const wanted = new URL(window.location.href).searchParams.get("sequence");
  const first = (wanted && list.byId(wanted)) || list.items[0];
  if (first) list.select(first.id);
  user = await naming;
  $("user-button").textContent = user;
}

start();
