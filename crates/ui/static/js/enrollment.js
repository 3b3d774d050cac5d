// The enrollment tokens page: the tokens workers enroll with, each limited
// to groups, with an optional expiry and number of uses; making one, whose
// secret is shown this once, and revoking one.

import { enc, get, request } from "./api.js";
import { ago, badge, confirmAction, failure, fill, h, table, toast, when } from "./dom.js";

const REFRESH_MS = 10000;

function groupsText(token) {
  return token.groups ? token.groups.join(", ") : "any group";
}

function usesText(token) {
  return token.max_uses ? `${token.uses} of ${token.max_uses}` : String(token.uses);
}

function stateBadge(state) {
  return badge(state.replace("_", " "), state === "active" ? "ok" : "bad");
}

async function revoke(token, refresh) {
  const text = `No worker enrolls with ${token.id} from now on. The workers it enrolled keep their own credentials.`;
  if (!await confirmAction(`Revoke ${token.id}`, text, "Revoke")) return;
  try {
    await request("DELETE", `/enrollment_tokens/${enc(token.id)}`);
    toast(`${token.id} revoked.`);
    await refresh();
  } catch (error) {
    toast(error.message, "bad");
  }
}

function tokenRow(token, refresh) {
  return h("tr", { "data-token": token.id },
    h("td", {}, h("span", { class: "mono" }, token.id),
      token.description ? h("div", { class: "muted small" }, token.description) : null),
    h("td", {}, groupsText(token)),
    h("td", { class: "num" }, usesText(token)),
    h("td", {}, token.expires_at ? when(token.expires_at) : "never"),
    h("td", {}, stateBadge(token.state)),
    h("td", { title: when(token.created_at) }, ago(token.created_at), h("div", { class: "muted small" }, `by ${token.created_by}`)),
    h("td", {}, h("button", { type: "button", class: "secondary", onclick: () => revoke(token, refresh) }, "Revoke")));
}

/** The token just made, with its secret, which is not shown again. */
function secretCard(token) {
  return h("section", { class: "card", id: "new-token" },
    h("h2", {}, `Token ${token.id} made`),
    h("p", {}, "Copy its secret now: the manager keeps only a hash of it and cannot show it again. Workers enroll with it as ",
      h("code", {}, "service.worker.token"), "."),
    h("pre", { id: "new-token-secret", class: "secret" }, token.token),
    h("p", { class: "muted" }, `For ${groupsText(token)}; ${token.expires_at ? `expires ${when(token.expires_at)}` : "never expires"}; `,
      token.max_uses ? `at most ${token.max_uses} worker(s).` : "any number of workers."));
}

function createForm(groups, shown, refresh) {
  const any = h("input", { type: "checkbox", id: "token-any-group" });
  const boxes = groups.map((group) => h("input", { type: "checkbox", value: group.name, id: `token-group-${group.name}` }));
  any.addEventListener("change", () => boxes.forEach((box) => { box.disabled = any.checked; }));
  const expires = h("input", { type: "datetime-local", id: "token-expires" });
  const maxUses = h("input", { type: "number", id: "token-max-uses", min: 1, step: 1 });
  const description = h("input", { type: "text", id: "token-description", maxlength: 256, size: 40 });
  const message = h("div", { role: "alert" });
  const form = h("form", { id: "create-token", onsubmit: async (event) => {
    event.preventDefault();
    fill(message);
    const picked = boxes.filter((box) => box.checked).map((box) => box.value);
    if (!any.checked && !picked.length) {
      fill(message, failure(new Error("Pick the groups the token allows, or any group.")));
      return;
    }
    const body = { groups: any.checked ? null : picked, description: description.value };
    if (expires.value) body.expires_at = new Date(expires.value).toISOString();
    if (maxUses.value) body.max_uses = Number(maxUses.value);
    try {
      const { data } = await request("POST", "/enrollment_tokens", { body });
      fill(shown, secretCard(data));
      form.reset();
      boxes.forEach((box) => { box.disabled = false; });
      await refresh();
    } catch (error) {
      fill(message, failure(error));
    }
  } },
    h("fieldset", { class: "checks" }, h("legend", {}, "Groups a worker may ask for"),
      h("label", { class: "inline", for: any.id }, any, "Any group"),
      boxes.map((box) => h("label", { class: "inline", for: box.id }, box, box.value))),
    h("div", { class: "row" },
      h("div", { class: "field" }, h("label", { for: expires.id }, "Expires (optional)"), expires),
      h("div", { class: "field" }, h("label", { for: maxUses.id }, "Most workers (optional)"), maxUses),
      h("div", { class: "field" }, h("label", { for: description.id }, "Description"), description)),
    message,
    h("div", { class: "toolbar" }, h("button", { type: "submit", id: "create-token-button" }, "Make token")));
  return form;
}

/** The enrollment tokens page. */
export async function enrollmentPage(view) {
  const groups = await get("/groups");
  const list = h("div");
  const shown = h("div");
  fill(view.main,
    h("div", { class: "page-head" }, h("h1", {}, "Enrollment tokens")),
    h("section", { class: "card" },
      h("p", { class: "muted" }, "A worker enrolls once with a token and gets a credential of its own. A token allows only its groups, until it expires or has enrolled its number of workers. The built-in token (",
        h("code", {}, "service.manager.worker_token"), ") allows any group and is not listed here."),
      list),
    shown,
    h("section", { class: "card" }, h("h2", {}, "New enrollment token"), createForm(groups, shown, refresh)));
  async function refresh() {
    const tokens = await get("/enrollment_tokens");
    if (view.left) return;
    fill(list, table(["Token", "Groups", "#Uses", "Expires", "State", "Created", ""],
      tokens.map((token) => tokenRow(token, refresh)),
      { empty: "No enrollment token yet: make one below." }));
  }
  await view.every(REFRESH_MS, refresh);
}
