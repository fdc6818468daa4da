// The campaign list: status, bid, budget, spend and a pacing bar per campaign.
import { all, get } from "./api.js";
import { count, h, money, percent, statusBadge } from "./ui.js";

function today() {
  return new Date().toISOString().slice(0, 10).replaceAll("-", "");
}

function bidText(bid) {
  if (bid.strategy === "fixed_cpm") return `${money(bid.cpm_micros)} CPM`;
  if (bid.strategy === "target_cpa") return `${money(bid.target_cpa_micros)} CPA (max ${money(bid.max_cpm_micros)} CPM)`;
  return `${money(bid.target_cpc_micros)} CPC (max ${money(bid.max_cpm_micros)} CPM)`;
}

// Two bars: the total budget spent, and today's spend against the daily budget (UTC day).
function pacing(campaign, spentMicros, todayMicros) {
  const total = campaign.budget.total_micros;
  const daily = campaign.budget.daily_micros || total;
  const bar = (label, used, of) => {
    const share = Math.min(1, of ? used / of : 0);
    return h("div", { class: "pacing-row" },
      h("span", { class: "pacing-label" }, label),
      h("progress", { max: "1", value: String(share), "aria-label": `${label}: ${percent(share, 0)} of ${money(of)}` }),
      h("span", { class: "num" }, percent(share, 0)));
  };
  return h("div", { class: "pacing" }, bar("total", spentMicros, total), bar("today", todayMicros, daily));
}

export async function campaignList() {
  const [campaigns, byCampaign, byDay] = await Promise.all([
    all("campaigns", "&include_archived=true"),
    get("/reports?by=campaign"),
    get("/reports?by=campaign,day"),
  ]);
  const stats = Object.fromEntries(byCampaign.rows.map((row) => [row.campaign, row]));
  const day = today();
  const todaySpend = Object.fromEntries(
    byDay.rows.filter((row) => row.day === day).map((row) => [row.campaign, row.spend_usd]),
  );
  const filter = h("input", { type: "search", "data-search": true, placeholder: "name or id" });
  const rows = campaigns.map((c) => {
    const row = stats[c.id] || { impressions: 0, clicks: 0, ctr: 0, spend_usd: 0 };
    const spent = Math.round(row.spend_usd * 1e6);
    return h("tr", { dataset: { text: `${c.name} ${c.id}`.toLowerCase() } },
      h("td", {}, h("a", { href: `#/campaigns/${c.id}` }, c.name), h("div", { class: "muted mono" }, c.id)),
      h("td", {}, statusBadge(c.status)),
      h("td", {}, bidText(c.bid)),
      h("td", { class: "num" }, money(c.budget.total_micros), h("div", { class: "muted" }, `${money(c.budget.daily_micros || c.budget.total_micros)} / day`)),
      h("td", { class: "num" }, money(spent)),
      h("td", {}, pacing(c, spent, Math.round((todaySpend[c.id] || 0) * 1e6))),
      h("td", { class: "num" }, count(row.impressions)),
      h("td", { class: "num" }, count(row.clicks)),
      h("td", { class: "num" }, percent(row.ctr)),
    );
  });
  filter.addEventListener("input", () => {
    const needle = filter.value.trim().toLowerCase();
    for (const tr of rows) tr.hidden = needle !== "" && !tr.dataset.text.includes(needle);
  });
  const table = h("table", { class: "grid", "aria-label": "Campaigns" },
    h("thead", {}, h("tr", {}, ["Campaign", "Status", "Bid", "Budget", "Spend", "Pacing", "Impressions", "Clicks", "CTR"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: "9", class: "empty" }, "No campaigns yet: press n to create one."))),
  );
  return h("section", {},
    h("div", { class: "page-head" },
      h("h1", { tabindex: "-1" }, "Campaigns"),
      h("label", { class: "inline" }, "Filter ", filter),
      h("a", { class: "button primary", href: "#/campaigns/new", "data-new": true, "aria-keyshortcuts": "n" }, "New campaign")),
    h("div", { class: "card scroll" }, table));
}
