// Export (GET /api/export?format=...): fetched with the token, then handed to the browser as
// a download (a plain link could not carry the Authorization header).

const DEFAULT_NAMES = {
  coco: "segany-coco.json",
  "coco-polygons": "segany-coco-polygons.json",
  sa1b: "segany-sa1b.zip",
  png: "segany-png-masks.zip",
};

/**
 * Download the project in `format` ("coco", "coco-polygons", "sa1b" or "png"), or what
 * `path` answers (a sequence's export).
 * @param {import("./api.js").Api} api
 * @returns {Promise<string>} the file name given to the download
 */
export async function exportProject(api, format, path = null) {
  const source = path || `/api/export?format=${encodeURIComponent(format)}`;
  const { blob, headers } = await api.get(source, { as: "blob" });
  const name = fileName(headers.get("Content-Disposition")) || DEFAULT_NAMES[format] || "export";
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // The download has its own copy once it started; a minute is ample.
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  return name;
}

/** The file name of a Content-Disposition header (filename*=UTF-8'' or filename=), or "". */
export function fileName(disposition) {
  if (!disposition) return "";
  const extended = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(disposition);
  if (extended) {
    try {
      return safeName(decodeURIComponent(extended[1].trim()));
    } catch {
      // a malformed escape: fall back to the plain parameter
    }
  }
  const plain = /filename\s*=\s*("([^"]*)"|[^;]+)/i.exec(disposition);
  if (!plain) return "";
  return safeName((plain[2] ?? plain[1]).trim());
}

function safeName(name) {
  return name.replace(/[\\/]/g, "_");
}
