// The targeting builder: a taxonomy tree picker, the tag expression it makes, and the live
// audience estimate from the DMP (POST /api/v1/estimates) as the conditions change.
import { api, get } from "./api.js";
import { count, debounce, field, h, nextId, percent } from "./ui.js";

let taxonomyPromise = null;
export const taxonomy = () => (taxonomyPromise ??= get("/taxonomy").then((data) => data.tags));

const groupOf = (code) => code.split(".").slice(0, 2).join(".");
const pretty = (code) => code.replaceAll("_", " ").replace(/^./, (c) => c.toUpperCase());
const term = (code, min) => (min === null || min === undefined || min === "" ? code : `${code} >= ${min}`);

// include: Map code -> {min, group}; a group's codes are ORed, groups ANDed. A tag picked
// in the tree joins the group of its category; exclude: Set of codes, each ANDed as NOT.
export function buildExpression(include, exclude) {
  const groups = new Map();
  for (const [code, { min, group }] of include) {
    groups.set(group, [...(groups.get(group) || []), term(code, min)]);
  }
  const parts = [...groups.values()].map((terms) => (terms.length > 1 ? `(${terms.join(" OR ")})` : terms[0]));
  for (const code of exclude) parts.push(`NOT ${code}`);
  return parts.join(" AND ");
}

// The builder's own shape back from text, or null when the text says more than it can show.
export function parseExpression(text) {
  const include = new Map();
  const exclude = new Set();
  const trimmed = text.trim();
  if (!trimmed) return { include, exclude };
  const parts = [];
  let depth = 0;
  const tokens = trimmed.split(/(\(|\)|\s+AND\s+)/i);
  let current = "";
  for (const token of tokens) {
    if (token === "(") depth++;
    if (token === ")") depth--;
    if (/^\s+AND\s+$/i.test(token) && depth === 0) {
      parts.push(current);
      current = "";
    } else current += token;
  }
  parts.push(current);
  const ref = /^([a-z0-9_]+(?:\.[a-z0-9_]+){0,2})(?:\s*>=\s*(\d{1,3}))?$/;
  for (const [index, raw] of parts.entries()) {
    const part = raw.trim();
    const not = part.match(/^NOT\s+([a-z0-9_.]+)$/i);
    if (not) {
      exclude.add(not[1]);
      continue;
    }
    const inner = part.startsWith("(") && part.endsWith(")") ? part.slice(1, -1) : part;
    const refs = inner.split(/\s+OR\s+/i).map((alt) => alt.trim().match(ref));
    if (refs.some((m) => !m)) return null;
    const shared = new Set(refs.map((m) => groupOf(m[1])));
    const group = shared.size === 1 ? [...shared][0] : `or-${index}`;
    for (const m of refs) include.set(m[1], { min: m[2] === undefined ? null : Number(m[2]), group });
  }
  return buildExpression(include, exclude) === trimmed.replace(/\s+/g, " ") ? { include, exclude } : null;
}

function tree(tags, state, refresh) {
  const dims = new Map();
  for (const tag of tags) {
    if (!dims.has(tag.dimension)) dims.set(tag.dimension, new Map());
    const cats = dims.get(tag.dimension);
    if (!cats.has(tag.category)) cats.set(tag.category, []);
    cats.get(tag.category).push(tag);
  }
  const boxes = new Map();
  const box = (code, label, title) => {
    const input = h("input", { type: "checkbox", value: code, onchange: () => toggle(code, input.checked) });
    boxes.set(code, input);
    return h("label", { class: "pick", title: title || code }, input, " ", label);
  };
  const toggle = (code, on) => {
    state.include.delete(code);
    state.exclude.delete(code);
    if (on) {
      if (state.mode() === "exclude") state.exclude.add(code);
      else state.include.set(code, { min: null, group: groupOf(code) });
    }
    refresh();
  };
  const root = h("div", { class: "tree", role: "group", "aria-label": "Taxonomy" });
  for (const [dim, cats] of dims) {
    const catNodes = [];
    for (const [cat, list] of cats) {
      const code = `${dim}.${cat}`;
      catNodes.push(h("details", { dataset: { code } },
        h("summary", {}, box(code, `${pretty(cat)} (any)`), h("span", { class: "muted" }, ` ${list.length}`)),
        h("ul", {}, list.map((tag) => h("li", { dataset: { search: `${tag.code} ${tag.name}`.toLowerCase() } },
          box(tag.code, tag.name.replace(/^[^:]*:\s*/, ""), `${tag.code}${tag.scored ? " (scored 0-100)" : ""}`))))));
    }
    root.append(h("details", { class: "dim", dataset: { code: dim } }, h("summary", {}, h("strong", {}, pretty(dim))), catNodes));
  }
  const sync = () => {
    for (const [code, input] of boxes) {
      input.checked = state.include.has(code) || state.exclude.has(code);
      input.closest("label").classList.toggle("excluded", state.exclude.has(code));
    }
  };
  const search = (needle) => {
    for (const li of root.querySelectorAll("li")) li.hidden = needle !== "" && !li.dataset.search.includes(needle);
    for (const details of root.querySelectorAll("details")) {
      const hits = details.querySelectorAll("li:not([hidden])").length;
      details.hidden = needle !== "" && hits === 0 && !details.dataset.code.includes(needle);
      details.open = needle !== "" && hits > 0;
    }
  };
  return { root, sync, search };
}

function chips(state, tags, refresh) {
  const byCode = new Map(tags.map((t) => [t.code, t]));
  const list = h("ul", { class: "chips", "aria-label": "Conditions" });
  const render = () => {
    list.replaceChildren();
    for (const [code, { min, group }] of state.include) {
      const tag = byCode.get(code);
      const score = tag?.scored
        ? h("input", { type: "number", min: "0", max: "100", value: min ?? "", placeholder: "any", class: "score", "aria-label": `Minimum score of ${code}`,
            oninput: (e) => { state.include.set(code, { group, min: e.target.value === "" ? null : Math.max(0, Math.min(100, Number(e.target.value))) }); refresh(false); } })
        : null;
      list.append(h("li", { class: "chip" }, h("span", {}, code), score ? [" score ≥ ", score] : null,
        h("button", { type: "button", class: "remove", "aria-label": `Remove ${code}`, onclick: () => { state.include.delete(code); refresh(); } }, "×")));
    }
    for (const code of state.exclude) {
      list.append(h("li", { class: "chip chip-not" }, h("span", {}, `NOT ${code}`),
        h("button", { type: "button", class: "remove", "aria-label": `Remove NOT ${code}`, onclick: () => { state.exclude.delete(code); refresh(); } }, "×")));
    }
    if (!list.firstChild) list.append(h("li", { class: "muted" }, "No tag condition: every device of the DMP."));
  };
  return { list, render };
}

export async function targetingBuilder(initial) {
  const tags = await taxonomy();
  const parsed = parseExpression(initial || "");
  const state = { include: parsed?.include || new Map(), exclude: parsed?.exclude || new Set(), mode: () => "include" };
  const modeName = nextId("mode");
  const includeRadio = h("input", { type: "radio", name: modeName, value: "include", checked: true });
  const excludeRadio = h("input", { type: "radio", name: modeName, value: "exclude" });
  state.mode = () => (excludeRadio.checked ? "exclude" : "include");
  const output = h("output", { class: "expression mono", "aria-label": "Tag expression", "data-testid": "expression" });
  const reach = h("p", { class: "reach", "aria-live": "polite", "data-testid": "estimate" });
  const textMode = h("input", { type: "checkbox" });
  const text = h("textarea", { rows: "3", class: "mono", spellcheck: false, "data-field": "targeting.tags" });
  const search = h("input", { type: "search", placeholder: "e.g. travel, automotive, 25-34", "data-search": true });

  let sequence = 0;
  const estimate = debounce(async (expression) => {
    const mine = ++sequence;
    reach.classList.add("pending");
    try {
      const { data } = await api("POST", "/estimates", { expression });
      if (mine !== sequence) return;
      const share = data.population ? data.devices / data.population : 0;
      reach.replaceChildren("Reach now: ", h("strong", { "data-testid": "reach" }, count(data.devices)),
        ` devices of ${count(data.population)} in the DMP (${percent(share, 1)})`);
      reach.classList.remove("error");
    } catch (err) {
      if (mine !== sequence) return;
      reach.textContent = err.field ? `${err.reason || err.message}` : err.message;
      reach.classList.add("error");
    } finally {
      if (mine === sequence) reach.classList.remove("pending");
    }
  }, 200);

  const picker = tree(tags, state, () => refresh());
  const conditions = chips(state, tags, (full = true) => refresh(full));
  const value = () => (textMode.checked ? text.value.trim() : buildExpression(state.include, state.exclude));
  function refresh(full = true) {
    if (full) {
      picker.sync();
      conditions.render();
    }
    const expression = value();
    output.textContent = expression || "(none: no tag condition)";
    if (!textMode.checked) text.value = expression;
    estimate(expression);
  }
  const builder = h("fieldset", { class: "builder" },
    h("legend", {}, "Pick tags"),
    h("div", { class: "mode" }, h("label", {}, includeRadio, " include"), h("label", {}, excludeRadio, " exclude (NOT)"),
      h("span", { class: "muted" }, " — within a category any tag matches; categories must all match")),
    field("Search the taxonomy", search),
    picker.root);
  search.addEventListener("input", () => picker.search(search.value.trim().toLowerCase()));
  text.addEventListener("input", () => refresh(false));
  textMode.addEventListener("change", () => {
    builder.disabled = textMode.checked;
    text.readOnly = !textMode.checked;
    if (!textMode.checked) {
      const back = parseExpression(text.value);
      if (back) {
        state.include = back.include;
        state.exclude = back.exclude;
      }
    }
    refresh();
  });
  text.readOnly = true;
  if (parsed === null) {
    textMode.checked = true;
    builder.disabled = true;
    text.readOnly = false;
    text.value = initial;
  }
  refresh();
  const element = h("div", { class: "targeting" },
    h("div", { class: "targeting-pick" }, builder),
    h("div", { class: "targeting-result" },
      h("h3", {}, "Conditions"), conditions.list,
      h("h3", {}, "Tag expression"), output, reach,
      h("label", { class: "inline" }, textMode, " Edit the expression as text"),
      field("Expression text", text, "AND, OR, NOT, parentheses, and `tag >= score` for scored tags")));
  return { element, value };
}
