// fetch() for the segany HTTP API: the token and the user on every request, errors turned into
// readable messages and shown once (in the message bar), then thrown as ApiError so that the
// caller stops what it was doing; the page itself keeps working.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status; // HTTP status, or 0 when the server could not be reached
    this.reported = false; // set once the user has been shown the message
  }
}

/** Text of an error body: {"detail": str} from the API, a FastAPI validation list, or text. */
export function describeDetail(body) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) {
    // FastAPI's request validation: [{"loc": [...], "msg": "..."}, ...]
    return body.detail
      .map((item) => {
        const where = Array.isArray(item.loc) ? item.loc.filter((p) => p !== "body").join(".") : "";
        return where ? `${where}: ${item.msg}` : String(item.msg);
      })
      .join("; ");
  }
  if (typeof body === "string" && body.trim()) return body.trim().slice(0, 300);
  return "";
}

export class Api {
  /**
   * @param {{token: string, user: () => string, report: (message: string) => void}} options
   *   token: sent as "Authorization: Bearer" when not empty; user: the X-Segany-User value;
   *   report: shows an error message to the user.
   */
  constructor({ token, user, report }) {
    this.token = token;
    this.user = user;
    this.report = report;
    this.inFlight = 0;
  }

  headers() {
    const headers = { "X-Segany-User": this.user() || "anonymous" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    return headers;
  }

  /**
   * One request. `json` is sent as a JSON body, `form` as multipart; `as` says how to read the
   * answer: "json" (default), "blob" (with the response's headers) or "none". `quiet`: the
   * caller handles a failure itself (and may `surface` it), nothing is shown.
   */
  async request(method, path, { json, form, as = "json", quiet = false } = {}) {
    const headers = this.headers();
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form !== undefined) {
      body = form; // the browser writes the multipart boundary
    }
    this.inFlight += 1;
    try {
      let response;
      try {
        response = await fetch(path, { method, headers, body });
      } catch (error) {
        throw this.fail(`${method} ${path}: cannot reach the server (${error.message})`, 0, quiet);
      }
      if (!response.ok) {
        throw this.fail(await errorMessage(method, path, response), response.status, quiet);
      }
      if (as === "none" || response.status === 204) return null;
      if (as === "blob") return { blob: await response.blob(), headers: response.headers };
      try {
        return await response.json();
      } catch (error) {
        const message = `${method} ${path}: the answer is not JSON (${error.message})`;
        throw this.fail(message, response.status, quiet);
      }
    } finally {
      this.inFlight -= 1;
    }
  }

  fail(message, status, quiet = false) {
    const error = new ApiError(message, status);
    return quiet ? error : this.surface(error);
  }

  /** Show an error that a quiet request kept back (once); returns it, to be thrown. */
  surface(error) {
    if (error instanceof ApiError && !error.reported) {
      this.report(error.message);
      error.reported = true;
    }
    return error;
  }

  get(path, options) {
    return this.request("GET", path, options);
  }

  post(path, json, options = {}) {
    return this.request("POST", path, { ...options, json });
  }

  patch(path, json) {
    return this.request("PATCH", path, { json });
  }

  delete(path) {
    return this.request("DELETE", path, { as: "none" });
  }

  upload(path, file) {
    const form = new FormData();
    form.append("file", file, file.name);
    return this.request("POST", path, { form });
  }
}

async function errorMessage(method, path, response) {
  let text = "";
  try {
    text = await response.text();
  } catch {
    // the status alone will have to do
  }
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  if (response.status === 401) {
    // One message for every refused request (they all have the same cure).
    return "This server needs an access token: open the page as /?token=YOUR_TOKEN (401).";
  }
  const detail = describeDetail(body);
  const what = `${method} ${path.split("?")[0]}`;
  return `${what} failed (${response.status}): ${detail || response.statusText || "no detail"}`;
}

/**
 * For .catch(): an ApiError has been shown to the user already and is dropped; anything else
 * is a bug, thrown on (the page's unhandledrejection handler shows it).
 */
export function ignoreReported(error) {
  if (!error || !error.reported) throw error;
}
