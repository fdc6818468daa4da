// Create or edit a campaign: basics, bid, budget, creatives, and targeting with the builder.
import { ApiError, all, api } from "./api.js";
import { creativePreview } from "./creatives.js";
import { announce, field, fromMicros, h, toMicros } from "./ui.js";
import { targetingBuilder } from "./targeting.js";

const META = ["id", "etag", "version", "created_at", "updated_at"];
const OS = ["ios", "android"];

function localInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function select(options, value) {
  return h("select", {}, options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}

export async function campaignForm(id) {
  const [creatives, loaded] = await Promise.all([
    all("creatives"),
    id ? api("GET", `/campaigns/${id}`) : Promise.resolve(null),
  ]);
  const current = loaded?.data || {
    name: "", status: "active", bid: { strategy: "fixed_cpm", cpm_micros: 2000000 },
    budget: { total_micros: 100000000, daily_micros: 10000000 }, pacing: "even", targeting: {}, creative_ids: [],
  };
  const etag = loaded?.etag;
  const archived = current.status === "archived";
  const t = current.targeting || {};
  const c = {
    name: h("input", { type: "text", required: true, maxlength: "200", value: current.name, "data-field": "name" }),
    status: select([["active", "Active"], ["paused", "Paused"]], current.status),
    start: h("input", { type: "datetime-local", value: localInput(current.start), "data-field": "start" }),
    end: h("input", { type: "datetime-local", value: localInput(current.end), "data-field": "end" }),
    strategy: select([["fixed_cpm", "Fixed CPM"], ["target_cpc", "Target CPC"], ["target_cpa", "Target CPA"]], current.bid.strategy),
    cpm: h("input", { type: "number", min: "0.001", step: "0.001", value: fromMicros(current.bid.cpm_micros ?? 2000000), "data-field": "bid.cpm_micros" }),
    cpc: h("input", { type: "number", min: "0.001", step: "0.001", value: fromMicros(current.bid.target_cpc_micros ?? 500000), "data-field": "bid.target_cpc_micros" }),
    cpa: h("input", { type: "number", min: "0.001", step: "0.001", value: fromMicros(current.bid.target_cpa_micros ?? 20000000), "data-field": "bid.target_cpa_micros" }),
    maxCpm: h("input", { type: "number", min: "0.001", step: "0.001", value: fromMicros(current.bid.max_cpm_micros ?? 5000000), "data-field": "bid.max_cpm_micros" }),
    total: h("input", { type: "number", min: "0.01", step: "0.01", required: true, value: fromMicros(current.budget.total_micros), "data-field": "budget.total_micros" }),
    daily: h("input", { type: "number", min: "0.01", step: "0.01", value: fromMicros(current.budget.daily_micros), "data-field": "budget.daily_micros" }),
    pacing: select([["even", "Even: spread over the day"], ["asap", "As soon as possible"]], current.pacing || "asap"),
    countries: h("input", { type: "text", value: (t.countries || []).join(", "), placeholder: "CHN, USA (empty: anywhere)", "data-field": "targeting.countries" }),
    capCount: h("input", { type: "number", min: "1", max: "10000", value: t.frequency_cap?.count ?? "", placeholder: "none" }),
    capPer: select([["day", "per day"], ["hour", "per hour"], ["lifetime", "per lifetime"]], t.frequency_cap?.per || "day"),
  };
  const os = OS.map((name) => h("input", { type: "checkbox", value: name, checked: (t.os || []).some((o) => o.name === name) }));
  const picks = creatives.map((cr) => h("input", { type: "checkbox", name: "creative", value: cr.id, checked: current.creative_ids.includes(cr.id) }));
  const targeting = await targetingBuilder(t.tags || "");
  const error = h("div", { class: "error", role: "alert" });
  const bidFields = h("div", { class: "row" });
  const showBid = () => bidFields.replaceChildren(...(c.strategy.value === "fixed_cpm"
    ? [field("CPM (USD per 1,000 impressions)", c.cpm)]
    : c.strategy.value === "target_cpa"
      ? [field("Target CPA (USD per conversion)", c.cpa), field("Max CPM (USD)", c.maxCpm)]
      : [field("Target CPC (USD per click)", c.cpc), field("Max CPM (USD)", c.maxCpm)]));
  c.strategy.addEventListener("change", showBid);
  showBid();

  function body() {
    const out = Object.fromEntries(Object.entries(current).filter(([k]) => !META.includes(k)));
    out.name = c.name.value.trim();
    out.status = c.status.value;
    for (const key of ["start", "end"]) {
      if (c[key].value) out[key] = new Date(c[key].value).toISOString();
      else delete out[key];
    }
    out.bid = c.strategy.value === "fixed_cpm"
      ? { strategy: "fixed_cpm", cpm_micros: toMicros(c.cpm.value) }
      : c.strategy.value === "target_cpa"
        ? { strategy: "target_cpa", target_cpa_micros: toMicros(c.cpa.value), max_cpm_micros: toMicros(c.maxCpm.value) }
        : { strategy: "target_cpc", target_cpc_micros: toMicros(c.cpc.value), max_cpm_micros: toMicros(c.maxCpm.value) };
    out.budget = { total_micros: toMicros(c.total.value) };
    if (c.daily.value) out.budget.daily_micros = toMicros(c.daily.value);
    out.pacing = c.pacing.value;
    out.creative_ids = picks.filter((p) => p.checked).map((p) => p.value);
    const tg = { ...(current.targeting || {}) };
    const tags = targeting.value();
    if (tags) tg.tags = tags; else delete tg.tags;
    const countries = c.countries.value.split(/[\s,]+/).filter(Boolean).map((x) => x.toUpperCase());
    if (countries.length) tg.countries = countries; else delete tg.countries;
    const chosen = os.filter((o) => o.checked).map((o) => ({ name: o.value }));
    if (chosen.length) tg.os = chosen; else delete tg.os;
    if (c.capCount.value) tg.frequency_cap = { count: Number(c.capCount.value), per: c.capPer.value };
    else delete tg.frequency_cap;
    out.targeting = tg;
    return out;
  }

  async function save(event) {
    event.preventDefault();
    error.replaceChildren();
    try {
      const saved = id
        ? await api("PUT", `/campaigns/${id}`, body(), { "If-Match": etag })
        : await api("POST", "/campaigns", body());
      announce(`Campaign “${saved.data.name}” saved.`, "ok");
      location.hash = "#/campaigns";
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      const stale = err.status === 412 ? " Someone changed it meanwhile: reload (r) and apply again." : "";
      error.replaceChildren(h("strong", {}, "Not saved: "), err.field ? `${err.field}: ${err.reason}` : err.message, stale);
      const target = form.querySelector(`[data-field="${err.field}"]`);
      (target || error).focus?.();
      if (!target) error.scrollIntoView({ block: "center" });
    }
  }

  const form = h("form", { class: "campaign-form", onsubmit: save, "data-save": true, novalidate: false },
    h("div", { class: "page-head" },
      h("h1", { tabindex: "-1" }, id ? `Edit ${current.name}` : "New campaign"),
      h("a", { href: "#/campaigns", class: "button" }, "Cancel"),
      h("button", { type: "submit", class: "primary", disabled: archived, "aria-keyshortcuts": "Control+Enter" }, "Save campaign")),
    archived ? h("p", { class: "notice" }, "This campaign is archived: it is kept for reports and can no longer change.") : null,
    error,
    h("div", { class: "columns" },
      h("fieldset", { class: "card" }, h("legend", {}, "Basics"),
        field("Name", c.name), field("Status", c.status),
        h("div", { class: "row" }, field("Start (optional)", c.start), field("End (optional)", c.end))),
      h("fieldset", { class: "card" }, h("legend", {}, "Bid and budget"),
        field("Bid strategy", c.strategy), bidFields,
        h("div", { class: "row" }, field("Total budget (USD)", c.total), field("Daily budget (USD)", c.daily)),
        field("Pacing", c.pacing))),
    h("fieldset", { class: "card" }, h("legend", {}, "Creatives"),
      creatives.length
        ? h("div", { class: "creative-picks" }, creatives.map((cr, i) => h("label", { class: "creative-pick" }, picks[i], " ", cr.name || cr.id, creativePreview(cr, 120))))
        : h("p", {}, "No creative yet: ", h("a", { href: "#/creatives" }, "add one first"), ".")),
    h("fieldset", { class: "card" }, h("legend", {}, "Audience"), targeting.element),
    h("fieldset", { class: "card" }, h("legend", {}, "Where and how often"),
      h("div", { class: "row" },
        field("Countries (ISO 3166 alpha-3)", c.countries),
        h("fieldset", { class: "field os" }, h("legend", {}, "Operating systems"), os.map((o) => h("label", { class: "inline" }, o, ` ${o.value}`))),
        field("Frequency cap (impressions)", c.capCount), field("Cap period", c.capPer))),
  );
  return form;
}
