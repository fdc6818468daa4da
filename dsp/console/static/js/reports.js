// Reports: CTR over time with its 95 % interval, a table per period, and CTR by tag.
import { all, get, token } from "./api.js";
import { bars, ctrOverTime } from "./charts.js";
import { taxonomy } from "./targeting.js";
import { count, dollars, field, h, interval, percent } from "./ui.js";

const label = (row) => (row.hour ? `${row.hour.slice(4, 6)}/${row.hour.slice(6, 8)} ${row.hour.slice(8)}h` : `${row.day.slice(0, 4)}-${row.day.slice(4, 6)}-${row.day.slice(6)}`);

function table(rows, first, name) {
  return h("table", { class: "grid", "aria-label": name },
    h("thead", {}, h("tr", {}, [first, "Wins", "Impressions", "Clicks", "CTR", "95% interval", "Spend", "eCPM", "eCPC"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map(([key, row]) => {
      const [low, high] = interval(row);
      return h("tr", {}, h("th", { scope: "row" }, key), h("td", { class: "num" }, count(row.wins)),
        h("td", { class: "num" }, count(row.impressions)), h("td", { class: "num" }, count(row.clicks)),
        h("td", { class: "num" }, percent(row.ctr)), h("td", { class: "num muted" }, `${percent(low)} – ${percent(high)}`),
        h("td", { class: "num" }, dollars(row.spend_usd)), h("td", { class: "num" }, row.ecpm_usd === undefined ? "–" : dollars(row.ecpm_usd)),
        h("td", { class: "num" }, row.ecpc_usd === undefined ? "–" : dollars(row.ecpc_usd)));
    })));
}

async function byTag(query) {
  try {
    const [report, tags] = await Promise.all([get(`/reports?by=tag${query}`), taxonomy()]);
    const codes = new Map(tags.map((t) => [String(t.id), t.code]));
    // The 15 tags with the most impressions, by CTR: a rare tag's CTR says little.
    const rows = report.rows.filter((r) => r.impressions > 0)
      .sort((a, b) => b.impressions - a.impressions).slice(0, 15).sort((a, b) => b.ctr - a.ctr);
    if (!rows.length) return h("p", { class: "muted" }, "No impressions yet.");
    return bars(rows.map((r) => {
      const [low, high] = interval(r);
      const name = r.tag === "-" ? "(no tag)" : r.tag_code || codes.get(String(r.tag)) || r.tag;
      return { label: name, value: r.ctr, low, high, note: `${percent(r.ctr)} (${count(r.impressions)} imp.)` };
    }));
  } catch (err) {
    return h("p", { class: "muted" }, `CTR by tag is not offered by this server (${err.reason || err.message}).`);
  }
}

export async function reportsView() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const campaigns = await all("campaigns", "&include_archived=true");
  const campaign = h("select", { "data-search": true }, h("option", { value: "" }, "All campaigns"),
    campaigns.map((c) => h("option", { value: c.id, selected: c.id === params.get("campaign") }, c.name)));
  const grain = h("select", {}, h("option", { value: "hour" }, "Hour"), h("option", { value: "day", selected: params.get("by") === "day" }, "Day"));
  const body = h("div", { "aria-live": "polite" });
  async function load() {
    const query = campaign.value ? `&campaign_id=${campaign.value}` : "";
    const [overTime, perCampaign, tags] = await Promise.all([
      get(`/reports?by=${grain.value}${query}`), get(`/reports?by=campaign${query}`), byTag(query),
    ]);
    const points = overTime.rows.map((row) => {
      const [low, high] = interval(row);
      return { label: label(row), value: row.ctr, low, high, impressions: row.impressions };
    });
    const total = overTime.rows.reduce((t, r) => ({ wins: t.wins + r.wins, impressions: t.impressions + r.impressions, clicks: t.clicks + r.clicks, spend_usd: t.spend_usd + r.spend_usd }), { wins: 0, impressions: 0, clicks: 0, spend_usd: 0 });
    total.ctr = total.impressions ? total.clicks / total.impressions : 0;
    const [low, high] = interval(total);
    body.replaceChildren(
      h("div", { class: "kpis" },
        [["Wins", count(total.wins)], ["Impressions", count(total.impressions)], ["Clicks", count(total.clicks)],
         ["CTR", percent(total.ctr)], ["95% interval", `${percent(low)} – ${percent(high)}`], ["Spend", dollars(total.spend_usd)]]
          .map(([k, v]) => h("div", { class: "kpi" }, h("span", {}, k), h("strong", { "data-kpi": k }, v)))),
      h("div", { class: "card" }, h("h2", {}, "CTR over time"), points.length ? ctrOverTime(points) : h("p", { class: "muted" }, "No delivery yet."),
        h("p", { class: "muted small" }, "Line: CTR per ", grain.value, "; band: its 95% Wilson interval.")),
      h("div", { class: "card" }, h("h2", {}, "By campaign"),
        table(perCampaign.rows.map((r) => [r.name || r.campaign, r]), "Campaign", "By campaign")),
      h("div", { class: "card" }, h("h2", {}, "CTR by tag"), tags),
      h("details", { class: "card" }, h("summary", {}, `Per ${grain.value}`),
        table(overTime.rows.map((r) => [label(r), r]), grain.value === "hour" ? "Hour (UTC)" : "Day (UTC)", "Over time")),
    );
  }
  campaign.addEventListener("change", load);
  grain.addEventListener("change", load);
  await load();
  return h("section", {},
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Reports"),
      h("div", { class: "row" }, field("Campaign", campaign), field("Per", grain)),
      h("button", { type: "button", onclick: () => download(campaign.value) }, "Download CSV")),
    body);
}

async function download(campaignId) {
  const query = campaignId ? `&campaign_id=${campaignId}` : "";
  const response = await fetch(`/api/v1/reports?by=campaign,day&format=csv${query}`, { headers: { Authorization: `Bearer ${token.get()}` } });
  const url = URL.createObjectURL(await response.blob());
  const a = h("a", { href: url, download: "report.csv" });
  document.body.append(a);
  a.click();
  a.remove();
  URL.revokeObjectURL(url);
}
