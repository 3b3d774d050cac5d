// The Web UI's entry: login, the navigation and the pages by URL hash.

import { ApiError, forgetToken, request, saveToken, savedToken, whenRefused } from "./api.js";
import { dashboard } from "./dashboard.js";
import { dataflowPage } from "./dataflow.js";
import { fill, h, toast } from "./dom.js";
import { enrollmentPage } from "./enrollment.js";
import { eventsPage } from "./events.js";
import { groupPage, groupsPage } from "./groups.js";
import { tapPage } from "./tap.js";
import { workersPage } from "./workers.js";

/** Pages by hash pattern; `:name` parts become parameters. */
const ROUTES = [
  ["", "dashboard", dashboard],
  ["workers", "workers", workersPage],
  ["enrollment", "enrollment", enrollmentPage],
  ["groups", "groups", groupsPage],
  ["groups/:group", "groups", groupPage],
  ["groups/:group/new", "groups", dataflowPage],
  ["groups/:group/dataflows/:name", "groups", dataflowPage],
  ["events", "events", eventsPage],
  ["tap", "tap", tapPage],
  ["tap/:group/:name", "tap", tapPage],
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const logout = document.getElementById("logout");
let current = null;

function match(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  for (const [pattern, section, page] of ROUTES) {
    const names = pattern.split("/").filter(Boolean);
    if (names.length !== parts.length) continue;
    const params = {};
    const fits = names.every((name, index) => {
      if (name.startsWith(":")) params[name.slice(1)] = parts[index];
      return name.startsWith(":") || name === parts[index];
    });
    if (fits) return { section, page, params };
  }
  return null;
}

/** What a page gets: where to draw, its parameters, and timers that stop when it is left. */
class View {
  constructor(params) {
    this.main = main;
    this.params = params;
    this.timers = [];
    this.cleanups = [];
    this.left = false;
  }

  /** Calls `cleanup` when the page is left (to close a stream, say). */
  whenLeft(cleanup) {
    this.cleanups.push(cleanup);
  }

  /**
   * Calls `task` now and then `ms` after each call ends, while the page is
   * shown. The first call's error is the caller's; later ones are shown.
   */
  every(ms, task) {
    const again = () => {
      if (!this.left) this.timers.push(setTimeout(tick, ms));
    };
    const tick = () => task().catch((error) => {
      if (!this.left && error.status !== 401) toast(`Refresh failed: ${error.message}`, "bad");
    }).finally(again);
    return task().finally(again);
  }

  leave() {
    this.left = true;
    this.timers.forEach(clearTimeout);
    this.cleanups.forEach((cleanup) => cleanup());
  }
}

async function show() {
  current?.leave();
  current = null;
  for (const open of document.querySelectorAll("dialog")) open.close();
  if (!savedToken()) {
    loginPage();
    return;
  }
  nav.hidden = false;
  logout.hidden = false;
  const found = match(location.hash);
  if (!found) {
    fill(main, h("div", { class: "card" }, h("h1", {}, "No such page"), h("a", { href: "#/" }, "Back to the dashboard")));
    return;
  }
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.page === found.section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const view = new View(found.params);
  current = view;
  fill(main, h("p", { class: "muted" }, "Loading…"));
  try {
    await found.page(view);
  } catch (error) {
    if (!view.left && !(error instanceof ApiError && error.status === 401)) {
      fill(main, h("div", { class: "card alert" }, h("h2", {}, "This page could not load"), h("p", {}, error.message)));
    }
  }
}

function loginPage(reason = "") {
  nav.hidden = true;
  logout.hidden = true;
  document.getElementById("cluster").textContent = "";
  const input = h("input", { id: "token", type: "password", name: "token", autocomplete: "current-password", required: true, spellcheck: "false" });
  const message = h("p", { id: "login-error", class: "error-text", role: "alert" }, reason);
  const button = h("button", { type: "submit" }, "Log in");
  const form = h("form", { onsubmit: async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    button.disabled = true;
    message.textContent = "";
    try {
      const { data } = await request("GET", "/overview", { token });
      saveToken(token);
      document.getElementById("cluster").textContent = data.cluster_name;
      show();
    } catch (error) {
      message.textContent = error.status === 401
        ? "The manager refused this token. Use the admin token (data/secrets/admin.token on the manager)."
        : error.status === 403
          ? "This token is not an admin token: the Web UI needs the admin token."
          : `The manager could not be reached: ${error.message}`;
      button.disabled = false;
      input.select();
    }
  } },
    // For password managers: the token belongs to the admin account.
    h("input", { type: "text", name: "username", autocomplete: "username", value: "admin", hidden: true }),
    h("div", { class: "field" }, h("label", { for: "token" }, "Admin token"), input),
    message, button);
  fill(main, h("div", { class: "card login" },
    h("h1", {}, "Log in to DataScale"),
    h("p", {}, "Paste the manager's admin token. It was printed at the manager's first start and is kept in data/secrets/admin.token. It stays in this tab until you log out."),
    form));
  input.focus();
}

logout.addEventListener("click", () => {
  forgetToken();
  history.replaceState(null, "", "#/");
  show();
});

whenRefused(() => {
  forgetToken();
  current?.leave();
  loginPage("The manager no longer accepts the saved token; log in again.");
});

window.addEventListener("hashchange", show);
if (savedToken()) {
  request("GET", "/overview").then(({ data }) => {
    document.getElementById("cluster").textContent = data.cluster_name;
  }).catch((error) => toast(error.message, "bad"));
}
show();
