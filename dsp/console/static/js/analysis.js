// Audience analysis: upload an ID list, see how it differs from the DMP population.
import { ApiError, api } from "./api.js";
import { bars } from "./charts.js";
import { count, field, h, percent } from "./ui.js";

const TYPES = ["", "idfa", "gaid", "oaid", "imei", "mac", "idfa_md5", "gaid_md5", "imei_md5", "imei_sha1", "mac_md5", "key"];

function rowsTable(rows, name) {
  return h("table", { class: "grid", "aria-label": name },
    h("thead", {}, h("tr", {}, ["Code", "In list", "Share", "Population share", "Lift"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, h("th", { scope: "row", class: "mono" }, r.code), h("td", { class: "num" }, count(r.count)),
      h("td", { class: "num" }, percent(r.share, 1)), h("td", { class: "num" }, percent(r.population_share, 1)),
      h("td", { class: `num ${r.lift > 1.2 ? "up" : r.lift !== null && r.lift < 0.8 ? "down" : ""}` }, r.lift === null ? "–" : `${r.lift.toFixed(2)}×`)))));
}

function results(data) {
  const m = data.match;
  const summary = h("div", { class: "kpis" },
    [["Lines", m.lines], ["Matched", m.matched], ["Unmatched", m.unmatched], ["Invalid", m.invalid], ["Devices", m.devices], ["Population", data.population]]
      .map(([k, v]) => h("div", { class: "kpi" }, h("span", {}, k), h("strong", { "data-kpi": k }, count(v)))));
  const rejected = m.rejected?.length
    ? h("details", { class: "card" }, h("summary", {}, `First invalid lines (${m.invalid})`),
        h("ul", {}, m.rejected.map((r) => h("li", {}, `line ${r.line}: ${r.reason} — `, h("code", {}, r.text)))))
    : null;
  if (data.withheld) {
    return [summary, rejected, h("p", { class: "notice", role: "status" },
      `Only ${count(data.analysed)} devices matched: shares are shown from ${data.min_analysed} devices on, so that no single device can be read out.`)];
  }
  const byLift = (rows) => rows.filter((r) => r.lift !== null && r.count >= 3).sort((a, b) => b.lift - a.lift);
  const top = byLift(data.categories).slice(0, 12);
  return [summary, rejected,
    h("div", { class: "card" }, h("h2", {}, "Categories most over-represented (lift)"),
      bars(top.map((r) => ({ label: r.code, value: r.lift, note: `${r.lift.toFixed(2)}× · ${percent(r.share, 1)} vs ${percent(r.population_share, 1)}` })), { format: (v) => `${v.toFixed(2)}×` })),
    h("div", { class: "columns" },
      h("div", { class: "card" }, h("h2", {}, "Dimensions"), rowsTable(data.dimensions, "Dimensions")),
      h("div", { class: "card" }, h("h2", {}, "Top tags by lift"), rowsTable(byLift(data.tags).slice(0, 15), "Tags"))),
    h("details", { class: "card" }, h("summary", {}, `Every category (${data.categories.length})`), rowsTable(data.categories, "Categories"))];
}

export async function analysisView() {
  const file = h("input", { type: "file", accept: ".csv,.txt,text/plain,text/csv" });
  const text = h("textarea", { rows: "6", class: "mono", placeholder: "idfa,AEBE52E7-03EE-455A-B3C4-E57283966239\ngaid,38400000-8cf0-11bd-b23e-10b96e40000d" });
  const idType = h("select", {}, TYPES.map((t) => h("option", { value: t }, t || "given on each line (type,value)")));
  const out = h("div", { "aria-live": "polite" });
  const error = h("p", { class: "error", role: "alert" });
  file.addEventListener("change", async () => {
    if (file.files[0]) text.value = await file.files[0].text();
  });
  async function analyse(event) {
    event.preventDefault();
    error.textContent = "";
    out.replaceChildren(h("p", { class: "loading" }, "Analysing…"));
    const body = { ids: text.value };
    if (idType.value) body.id_type = idType.value;
    try {
      const { data } = await api("POST", "/analysis", body);
      out.replaceChildren(...results(data).filter(Boolean));
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      out.replaceChildren();
      error.textContent = err.status === 413 ? "The list is larger than this server takes in one request: split it, or ask the operator to raise DSP_API_MAX_BODY_BYTES." : err.field ? `${err.field}: ${err.reason}` : err.message;
    }
  }
  return h("section", {},
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Audience analysis")),
    h("form", { class: "card", onsubmit: analyse, "data-save": true },
      h("p", {}, "Upload a list of device IDs (your converters, say) to see which traits set them apart from the DMP population. One ID a line, up to 5,000 within the server's request size (64 KiB by default: about 1,400 IDs)."),
      h("div", { class: "row" }, field("ID list file", file), field("Type of bare IDs", idType)),
      field("IDs", text, "type,value a line (idfa, gaid, oaid, imei, mac; raw, _md5 or _sha1), or bare values of the type chosen"),
      error,
      h("button", { type: "submit", class: "primary" }, "Analyse")),
    out);
}
