// COCO run-length encoded masks, as pycocotools writes them.
//
// A mask of H x W pixels is read in column-major order (down the first column, then the next)
// and stored as run lengths that alternate background, foreground, background, ... starting
// with background (a mask whose first pixel is set starts with a run of 0).
// The compressed form packs those runs into an ASCII string: each run is written in 5-bit
// groups, least significant first, one character per group (value + 48); bit 0x20 of a group
// says "another group follows", and bit 0x10 of the last group is the sign. From the fourth
// run on, the string stores the difference to the run two places before (runs of the same kind
// tend to have similar lengths), so those values may be negative.

/**
 * Run lengths from a compressed COCO counts string.
 * @param {string} counts the "counts" field of a compressed RLE
 * @returns {number[]} run lengths, background first
 */
export function decodeCounts(counts) {
  const runs = [];
  let p = 0;
  while (p < counts.length) {
    let value = 0;
    let weight = 1; // 32 ** (groups read so far); arithmetic, not shifts: runs may pass 2^31
    let more = true;
    let group = 0;
    while (more) {
      if (p >= counts.length) throw new Error("RLE counts string ends inside a number");
      group = counts.charCodeAt(p) - 48;
      if (group < 0 || group > 63) {
        throw new Error(`RLE counts string has an invalid character at ${p}`);
      }
      value += (group & 0x1f) * weight;
      weight *= 32;
      more = (group & 0x20) !== 0;
      p += 1;
    }
    if (group & 0x10) value -= weight; // sign bit of the last group: two's complement
    if (runs.length > 2) value += runs[runs.length - 2];
    runs.push(value);
  }
  return runs;
}

/**
 * Run lengths of an RLE object, compressed (string counts) or not (array counts).
 * Checks that the runs are non-negative and cover exactly H * W pixels.
 * @param {{size: [number, number], counts: string | number[]}} rle
 * @returns {{height: number, width: number, runs: number[]}}
 */
export function rleRuns(rle) {
  const [height, width] = rle.size;
  const runs = typeof rle.counts === "string" ? decodeCounts(rle.counts) : rle.counts.slice();
  let total = 0;
  for (const run of runs) {
    if (!(run >= 0)) throw new Error(`RLE has a negative run (${run})`);
    total += run;
  }
  if (total !== height * width) {
    throw new Error(`RLE runs cover ${total} pixels, the mask has ${height} x ${width}`);
  }
  return { height, width, runs };
}

/**
 * Write `value` into a row-major (H * W) array wherever the mask is set.
 * @param {Uint8Array | Uint16Array} target row-major, H * W entries
 * @param {{height: number, width: number, runs: number[]}} mask from `rleRuns`
 * @param {number} value what to write into the foreground pixels
 * @returns {number} the number of foreground pixels (the mask's area)
 */
export function paintRuns(target, { height, width, runs }, value) {
  let position = 0; // column-major index of the next pixel
  let area = 0;
  for (let i = 0; i < runs.length; i += 1) {
    const run = runs[i];
    if (i % 2 === 1) {
      area += run;
      let left = run;
      let row = position % height;
      let col = (position - row) / height;
      while (left > 0) {
        const rowEnd = Math.min(height, row + left); // this run's part in column `col`
        for (let r = row; r < rowEnd; r += 1) target[r * width + col] = value;
        left -= rowEnd - row;
        row = 0;
        col += 1;
      }
    }
    position += run;
  }
  return area;
}

/**
 * Decode an RLE into a row-major mask.
 * @param {{size: [number, number], counts: string | number[]}} rle
 * @returns {{height: number, width: number, data: Uint8Array, area: number}} data: H * W,
 *   1 inside the mask, 0 outside, row-major (index y * W + x)
 */
export function decodeRle(rle) {
  const mask = rleRuns(rle);
  const data = new Uint8Array(mask.height * mask.width);
  const area = paintRuns(data, mask, 1);
  return { height: mask.height, width: mask.width, data, area };
}
