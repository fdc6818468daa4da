// The console's shell: sign-in, navigation, routes (#/campaigns, ...), keyboard shortcuts.
import { api, token } from "./api.js";
import { announce, field, h } from "./ui.js";
import { campaignForm } from "./campaign_form.js";
import { campaignList } from "./campaigns.js";
import { creativesView } from "./creatives.js";
import { reportsView } from "./reports.js";
import { analysisView } from "./analysis.js";

const ROUTES = [
  [/^#\/campaigns\/new$/, () => campaignForm(null)],
  [/^#\/campaigns\/([A-Za-z0-9_-]+)$/, (m) => campaignForm(m[1])],
  [/^#\/campaigns$/, () => campaignList()],
  [/^#\/creatives$/, () => creativesView()],
  [/^#\/reports$/, () => reportsView()],
  [/^#\/analysis$/, () => analysisView()],
];
const NAV = [
  ["#/campaigns", "Campaigns", "1"],
  ["#/creatives", "Creatives", "2"],
  ["#/reports", "Reports", "3"],
  ["#/analysis", "Audience analysis", "4"],
];
export const SHORTCUTS = [
  ["1 – 4", "Go to Campaigns, Creatives, Reports, Audience analysis"],
  ["n", "New campaign (on Campaigns) or new creative (on Creatives)"],
  ["/", "Focus the search or first field of the page"],
  ["r", "Reload the data of the page"],
  ["Ctrl+Enter", "Save the form being edited"],
  ["?", "Show this list"],
  ["Esc", "Leave the field being typed in (shortcuts work again); close this list"],
];

const main = () => document.getElementById("main");
let advertiser = null;

function signInView() {
  const input = h("input", { type: "password", name: "token", autocomplete: "off", required: true });
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "card signin", onsubmit: (event) => signIn(event, input, error) },
    h("h1", { tabindex: "-1" }, "Sign in"),
    h("p", {}, "Use an API token of your advertiser (from ", h("code", {}, "dsp tokens create"), ")."),
    field("API token", input),
    error,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  return form;
}

async function signIn(event, input, error) {
  event.preventDefault();
  token.set(input.value.trim());
  try {
    await loadAdvertiser();
    if (!location.hash || location.hash === "#/signin") location.hash = "#/campaigns";
    else render();
  } catch (err) {
    token.clear();
    error.textContent = err.status === 401 ? "That token is unknown or revoked." : err.message;
    input.focus();
  }
}

async function loadAdvertiser() {
  const { data } = await api("GET", "/advertisers");
  advertiser = data.items[0];
  shell();
}

function signOut() {
  token.clear();
  advertiser = null;
  shell();
  render();
}

function shell() {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  nav.replaceChildren();
  who.replaceChildren();
  if (!advertiser) return;
  for (const [href, label, key] of NAV) {
    nav.append(h("a", { href, "aria-keyshortcuts": key }, label));
  }
  who.append(
    h("span", { class: "advertiser", title: advertiser.id }, advertiser.name),
    h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"),
  );
}

async function render() {
  const root = main();
  if (!token.get() || !advertiser) {
    root.replaceChildren(signInView());
    root.querySelector("input").focus();
    return;
  }
  const hash = location.hash || "#/campaigns";
  for (const a of document.querySelectorAll("#nav a")) {
    const current = hash.startsWith(a.getAttribute("href"));
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const route = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!route) {
    location.hash = "#/campaigns";
    return;
  }
  root.replaceChildren(h("p", { class: "loading" }, "Loading…"));
  try {
    const view = await route[1](hash.match(route[0]));
    root.replaceChildren(view);
  } catch (err) {
    root.replaceChildren(h("div", { class: "card" }, h("h1", { tabindex: "-1" }, "Not available"),
      h("p", { class: "error", role: "alert" }, err.status === 404 ? "Not found." : err.message)));
  }
  root.querySelector("h1")?.focus({ preventScroll: true });
}

function shortcutsDialog() {
  const dialog = document.getElementById("shortcuts");
  if (!dialog.firstChild) {
    dialog.append(
      h("h2", {}, "Keyboard shortcuts"),
      h("dl", {}, SHORTCUTS.map(([keys, what]) => [h("dt", {}, h("kbd", {}, keys)), h("dd", {}, what)])),
      h("form", { method: "dialog" }, h("button", { class: "primary" }, "Close")),
    );
  }
  dialog.showModal();
}

function typing(target) {
  return target.closest("input, textarea, select, [contenteditable]") !== null;
}

function onKey(event) {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    const form = document.activeElement?.closest("form[data-save]") || main().querySelector("form[data-save]");
    if (form) {
      event.preventDefault();
      form.requestSubmit();
    }
    return;
  }
  if (event.key === "Escape" && typing(event.target)) {
    event.target.blur();  // back to the page, where the shortcuts work
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target) || !advertiser) return;
  if (document.getElementById("shortcuts").open) return;
  const nav = NAV.find(([, , key]) => key === event.key);
  if (nav) location.hash = nav[0];
  else if (event.key === "?") shortcutsDialog();
  else if (event.key === "r") render();
  else if (event.key === "n") {
    const button = main().querySelector("[data-new]");
    if (button) button.click();
  } else if (event.key === "/") {
    const target = main().querySelector("[data-search]") || main().querySelector("input, select, textarea");
    if (target) target.focus();
  } else return;
  event.preventDefault();
}

window.addEventListener("hashchange", render);
window.addEventListener("keydown", onKey);
window.addEventListener("console:signed-out", () => {
  if (advertiser) {
    signOut();
    announce("Your token no longer opens this advertiser: sign in again.", "error");
  }
});
document.getElementById("help").addEventListener("click", shortcutsDialog);

(async () => {
  if (token.get()) {
    try {
      await loadAdvertiser();
    } catch {
      token.clear();
    }
  }
  render();
})();
