// Masks drawn into offscreen canvases at the image's own resolution, so that the viewer can
// draw them with the image's transform: at any zoom a mask pixel covers its image pixel.
//
// Many masks share one canvas: they are painted into a label map (one label per pixel, the
// last mask painted wins), and each label has a style. One canvas per layer, not per mask,
// keeps the memory bounded by the image size (a 12 MP image with 100 proposals would otherwise
// need 100 canvases of 48 MB).

import { paintRuns, rleRuns } from "./rle.js";

/** "#rrggbb" (or "#rgb") -> [r, g, b]; unknown strings give a neutral blue. */
export function parseColor(color) {
  const hex = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(color || "");
  if (!hex) return [30, 144, 255];
  let digits = hex[1];
  if (digits.length === 3) digits = [...digits].map((d) => d + d).join("");
  return [0, 2, 4].map((i) => parseInt(digits.slice(i, i + 2), 16));
}

/** A distinct colour for label or id `n` (golden-angle hues). */
export function paletteColor(n) {
  const hue = (n * 137.508) % 360;
  return hslToHex(hue, 70, 55);
}

function hslToHex(h, s, l) {
  const a = (s / 100) * Math.min(l / 100, 1 - l / 100);
  const channel = (n) => {
    const k = (n + h / 30) % 12;
    const c = l / 100 - a * Math.max(-1, Math.min(k - 3, 9 - k, 1));
    return Math.round(255 * c)
      .toString(16)
      .padStart(2, "0");
  };
  return `#${channel(0)}${channel(8)}${channel(4)}`;
}

/**
 * A style: {color: "#rrggbb", fill: alpha 0..1 inside, edge: alpha 0..1 on the border,
 * stripes: bool (diagonal hatching, for suggestions)}.
 * @param {{height: number, width: number}} size the image's size in pixels
 * @param {Array<{rle: object, style: object}>} items masks in paint order (last on top)
 * @returns {HTMLCanvasElement | null} an H x W canvas, or null when there is nothing to draw
 */
export function renderMasks(size, items) {
  if (!items.length) return null;
  const { height, width } = size;
  const labels = new Uint16Array(height * width); // 0: no mask; label k: items[k - 1]
  const styles = [null];
  items.forEach((item, index) => {
    const mask = item.runs ? item.runs : rleRuns(item.rle);
    if (mask.height !== height || mask.width !== width) {
      throw new Error(
        `a mask of ${mask.width} x ${mask.height} on an image of ${width} x ${height}`,
      );
    }
    paintRuns(labels, mask, index + 1);
    const rgb = parseColor(item.style.color);
    styles.push({
      rgb,
      fill: Math.round(255 * item.style.fill),
      faint: Math.round(255 * item.style.fill * 0.25),
      edge: Math.round(255 * item.style.edge),
      stripes: Boolean(item.style.stripes),
    });
  });
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  const rgba = image.data;
  // Stripes a few screen pixels wide when the whole image is in view.
  const period = Math.max(4, Math.round(Math.max(width, height) / 120));
  for (let y = 0; y < height; y += 1) {
    const rowStart = y * width;
    for (let x = 0; x < width; x += 1) {
      const i = rowStart + x;
      const label = labels[i];
      if (label === 0) continue;
      const style = styles[label];
      const edge =
        x === 0 ||
        x === width - 1 ||
        y === 0 ||
        y === height - 1 ||
        labels[i - 1] !== label ||
        labels[i + 1] !== label ||
        labels[i - width] !== label ||
        labels[i + width] !== label;
      let alpha = style.fill;
      if (edge) alpha = style.edge;
      else if (style.stripes && Math.floor((x + y) / period) % 2 === 1) alpha = style.faint;
      const o = 4 * i;
      rgba[o] = style.rgb[0];
      rgba[o + 1] = style.rgb[1];
      rgba[o + 2] = style.rgb[2];
      rgba[o + 3] = alpha;
    }
  }
  context.putImageData(image, 0, 0);
  return canvas;
}
