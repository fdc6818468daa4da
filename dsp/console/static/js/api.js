// The console's only way to the server: the public /api/v1 with the signed-in bearer token.

const TOKEN = "rtb-dsp-console-token";

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error || `HTTP ${status}`);
    this.status = status;
    this.field = body?.field;
    this.reason = body?.reason;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN),
  set: (value) => sessionStorage.setItem(TOKEN, value),
  clear: () => sessionStorage.removeItem(TOKEN),
};

export async function api(method, path, body, headers = {}) {
  const init = { method, headers: { Authorization: `Bearer ${token.get()}`, ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(`/api/v1${path}`, init);
  const data = response.headers.get("Content-Type")?.includes("json") ? await response.json() : null;
  if (response.status === 401) window.dispatchEvent(new Event("console:signed-out"));
  if (!response.ok) throw new ApiError(response.status, data);
  return { data, etag: response.headers.get("ETag") };
}

export const get = async (path) => (await api("GET", path)).data;

// Every item of a paginated list.
export async function all(plural, extra = "") {
  const items = [];
  let cursor = null;
  do {
    const page = await get(`/${plural}?limit=200${extra}${cursor ? `&cursor=${cursor}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}
