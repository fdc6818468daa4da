// Creatives: the list with previews, and a form whose preview follows what is typed.
import { ApiError, all, api } from "./api.js";
import { announce, field, h, statusBadge } from "./ui.js";

const SIZES = [[300, 250], [320, 50], [728, 90], [160, 600], [300, 600], [320, 480]];

function image(url, w, hgt, alt) {
  const img = h("img", { src: url, alt, width: String(w), height: String(hgt), loading: "lazy", referrerpolicy: "no-referrer" });
  img.addEventListener("error", () => img.replaceWith(h("div", { class: "placeholder", style: `aspect-ratio:${w}/${hgt}`, role: "img", "aria-label": `${alt} (image not reachable)` }, `${w}×${hgt}`)));
  return img;
}

// A creative as it would show, scaled to at most `width` pixels wide.
export function creativePreview(cr, width = 300) {
  const box = h("div", { class: `preview preview-${cr.format}`, style: `max-width:${width}px` });
  if (cr.format === "banner") {
    box.append(image(cr.image_url, cr.w, cr.h, `${cr.w}×${cr.h} banner`));
  } else if (cr.format === "native") {
    box.append(image(cr.image_url, 1200, 628, "native image"),
      h("strong", { class: "native-title" }, cr.title || ""), h("p", { class: "native-text" }, cr.description || ""),
      h("span", { class: "sponsored" }, `Sponsored · ${(cr.adomain || [])[0] || ""}`));
  } else {
    box.append(cr.media_url
      ? h("video", { src: cr.media_url, controls: true, preload: "none", width: String(cr.w || 640), height: String(cr.h || 360) })
      : h("div", { class: "placeholder", style: "aspect-ratio:16/9" }, "VAST video", h("br"), h("small", {}, cr.vast_url || "")));
  }
  if (width > 150) box.append(h("div", { class: "landing muted" }, "→ ", cr.landing_url || ""));
  return box;
}

function creativeForm(onSaved) {
  const c = {
    format: h("select", {}, ["banner", "native", "video"].map((f) => h("option", { value: f }, f))),
    name: h("input", { type: "text", maxlength: "200", "data-field": "name" }),
    size: h("select", {}, SIZES.map(([w, hh]) => h("option", { value: `${w}x${hh}` }, `${w}×${hh}`))),
    image: h("input", { type: "url", required: true, placeholder: "https://cdn.example.com/ad.png", "data-field": "image_url" }),
    title: h("input", { type: "text", maxlength: "90", "data-field": "title" }),
    description: h("textarea", { rows: "2", maxlength: "500", "data-field": "description" }),
    media: h("input", { type: "url", placeholder: "https://cdn.example.com/ad.mp4", "data-field": "media_url" }),
    landing: h("input", { type: "url", required: true, placeholder: "https://brand.example.com/offer", "data-field": "landing_url" }),
    adomain: h("input", { type: "text", required: true, placeholder: "brand.example.com", "data-field": "adomain" }),
    cat: h("input", { type: "text", placeholder: "IAB2, IAB2-3", "data-field": "cat" }),
  };
  const sample = h("button", { type: "button", class: "link", onclick: () => {
    c.image.value = `${location.origin}/console/static/samples/banner-300x250.svg`;
    redraw();
  } }, "Try it with the sample image");
  const preview = h("div", { class: "live-preview", "aria-label": "Preview", role: "region" });
  const error = h("div", { class: "error", role: "alert" });
  const specific = h("div");
  const list = (text) => text.split(/[\s,]+/).filter(Boolean);
  function body() {
    const [w, hh] = c.size.value.split("x").map(Number);
    const out = { format: c.format.value, landing_url: c.landing.value.trim(), adomain: list(c.adomain.value) };
    if (c.name.value.trim()) out.name = c.name.value.trim();
    if (c.cat.value.trim()) out.cat = list(c.cat.value);
    if (out.format === "banner") Object.assign(out, { w, h: hh, image_url: c.image.value.trim() });
    if (out.format === "native") Object.assign(out, { title: c.title.value.trim(), description: c.description.value, image_url: c.image.value.trim() });
    if (out.format === "video") Object.assign(out, { w: 640, h: 360, media_url: c.media.value.trim(), duration_s: 15 });
    return out;
  }
  function update() {
    const format = c.format.value;
    const fields = {  // built on demand: a control lives in one field at a time
      banner: () => [field("Size", c.size), field("Image URL", c.image), sample],
      native: () => [field("Title", c.title), field("Description", c.description), field("Image URL", c.image), sample],
      video: () => [field("Video file URL", c.media)],
    };
    specific.replaceChildren(...fields[format]());
    preview.replaceChildren(h("h3", {}, "Preview"), creativePreview(body(), 320));
  }
  const redraw = () => preview.replaceChildren(h("h3", {}, "Preview"), creativePreview(body(), 320));
  c.format.addEventListener("change", update);
  for (const control of Object.values(c)) if (control !== c.format) control.addEventListener("input", redraw);
  c.size.addEventListener("change", redraw);
  async function save(event) {
    event.preventDefault();
    error.replaceChildren();
    try {
      const { data } = await api("POST", "/creatives", body());
      announce(`Creative ${data.name || data.id} added.`, "ok");
      onSaved();
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      error.replaceChildren(h("strong", {}, "Not saved: "), err.field ? `${err.field}: ${err.reason}` : err.message);
      form.querySelector(`[data-field="${err.field}"]`)?.focus();
    }
  }
  const form = h("form", { class: "card creative-form", onsubmit: save, "data-save": true },
    h("h2", {}, "New creative"), error,
    h("div", { class: "columns" },
      h("div", {}, field("Format", c.format), field("Name", c.name), specific,
        field("Landing page URL", c.landing), field("Advertiser domain(s)", c.adomain, "The adomain the exchange checks"),
        field("IAB categories (optional)", c.cat),
        h("button", { type: "submit", class: "primary", "aria-keyshortcuts": "Control+Enter" }, "Add creative")),
      preview));
  update();
  return form;
}

export async function creativesView() {
  const creatives = await all("creatives", "&include_archived=true");
  const holder = h("div");
  const section = h("section", {},
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Creatives"),
      h("button", { type: "button", class: "primary", "data-new": true, "aria-keyshortcuts": "n", onclick: () => {
        holder.replaceChildren(creativeForm(() => window.dispatchEvent(new HashChangeEvent("hashchange"))));
        holder.querySelector("select").focus();
      } }, "New creative")),
    holder,
    h("ul", { class: "creative-grid", "aria-label": "Creatives" },
      creatives.length ? creatives.map((cr) => h("li", { class: "card" },
        h("div", { class: "creative-head" }, h("strong", {}, cr.name || cr.id), statusBadge(cr.status)),
        h("div", { class: "muted mono" }, `${cr.id} · ${cr.format}${cr.w ? ` ${cr.w}×${cr.h}` : ""}`),
        creativePreview(cr, 300),
        cr.status === "archived" ? null : h("button", { type: "button", class: "link", onclick: async () => {
          try {
            await api("POST", `/creatives/${cr.id}/archive`, undefined, { "If-Match": cr.etag });
            announce("Creative archived.", "ok");
            window.dispatchEvent(new HashChangeEvent("hashchange"));
          } catch (err) { announce(err.message, "error"); }
        } }, "Archive"))) : h("li", { class: "empty" }, "No creatives yet: press n to add one.")));
  return section;
}
