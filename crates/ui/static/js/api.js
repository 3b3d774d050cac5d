// The REST API on this origin, with the admin token kept for the session.

const KEY = "datascale.admin_token";

/** The admin token of this browser tab's session, or null. */
export function savedToken() {
  return sessionStorage.getItem(KEY);
}

export function saveToken(token) {
  sessionStorage.setItem(KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

/** An error answer: its status, and the API's `{error: {code, message, details}}`. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = body?.error ?? {};
    super(error.message ?? `the manager answered ${status}`);
    this.status = status;
    this.code = error.code ?? "unknown";
    this.details = Array.isArray(error.details) ? error.details : [];
  }
}

let onRefused = () => {};

/** Calls `handler` when the manager refuses the saved token (401). */
export function whenRefused(handler) {
  onRefused = handler;
}

/**
 * Sends a request to `/api/v1${path}` with the saved token (or `token`),
 * a JSON `body` and extra `headers`; answers `{data, etag}` or throws
 * an ApiError.
 */
export async function request(method, path, { body, headers = {}, token = savedToken() } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const response = await fetch(`/api/v1${path}`, init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: { message: text } };
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && token === savedToken()) onRefused(error);
    throw error;
  }
  return { data, etag: response.headers.get("ETag") };
}

/** The body of `GET /api/v1${path}`. */
export async function get(path) {
  return (await request("GET", path)).data;
}

/** `encodeURIComponent`, for names in paths. */
export const enc = encodeURIComponent;
