// The UniFashion search page: talks to the service's JSON API (see /docs). No framework, no network
// access beyond this server.
"use strict";

const K = 24; // results per search

const $ = (selector, root = document) => root.querySelector(selector);

const state = {
  steps: [], // the chain of searches: {label, results, tookMs}; refinements append, a new search resets
  active: -1, // the step whose results are shown
  upload: null, // the photo chosen for the next search (a File)
  captions: true, // the index has gallery captions: composed searches re-rank with them
  designItem: null, // the item the generate panel starts from, or null
};

// ---- talking to the API --------------------------------------------------------------------------

// A service started with an API key answers 401: ask for the key (once for requests refused together),
// keep it for this tab's session and send it as a header from then on.
let apiKey = sessionStorage.getItem("unifashion-api-key") || "";
let asking = null; // the pending prompt

function withKey(options) {
  if (!apiKey) return options;
  return { ...options, headers: { ...(options.headers || {}), "X-API-Key": apiKey } };
}

function askForKey() {
  return Promise.resolve().then(() => {
    const entered = (window.prompt("This service needs its API key:") || "").trim();
    if (entered) sessionStorage.setItem("unifashion-api-key", (apiKey = entered));
  }).finally(() => { asking = null; });
}

async function send(path, options = {}) {
  const sentWith = apiKey;
  const response = await fetch(path, withKey(options));
  if (response.status !== 401) return response;
  if (apiKey === sentWith) await (asking = asking || askForKey());
  return apiKey !== sentWith ? fetch(path, withKey(options)) : response;
}

async function api(path, options = {}) {
  const response = await send(path, options);
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    throw new Error(body && typeof body.detail === "string" ? body.detail : `${response.status} ${response.statusText}`);
  }
  return body;
}

function postJSON(path, data) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data) });
}

function postForm(path, fields) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    if (value === null || value === undefined || value === "") continue;
    if (value instanceof Blob) form.append(name, value, value.name || "photo.png");
    else form.append(name, String(value));
  }
  return api(path, { method: "POST", body: form });
}

// ---- messages ------------------------------------------------------------------------------------

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

function setBusy(busy, message = "") {
  document.body.dataset.busy = busy ? "true" : "false";
  $("#results").setAttribute("aria-busy", busy ? "true" : "false");
  $("#search-button").disabled = busy;
  if (message) $("#status").textContent = message;
}

// ---- searches and the chain of refinements -------------------------------------------------------

// Run one search; `fresh` starts a new chain, otherwise the step is appended after the active one.
async function runStep(label, request, fresh) {
  showError("");
  setBusy(true, "Searching…");
  try {
    const body = await request();
    const step = { label, results: body.results, tookMs: body.took_ms, kind: body.kind };
    if (fresh) state.steps = [];
    else state.steps = state.steps.slice(0, state.active + 1);
    state.steps.push(step);
    state.active = state.steps.length - 1;
    render();
    window.scrollTo({ top: 0, behavior: "smooth" }); // the breadcrumbs and the new first results
  } catch (error) {
    showError(error.message);
    $("#status").textContent = "";
  } finally {
    setBusy(false);
  }
}

function category() {
  return $("#category").value || null;
}

function searchFromForm(event) {
  if (event) event.preventDefault();
  const text = $("#query").value.trim();
  const photo = state.upload;
  if (!text && !photo) {
    showError("Type what you are looking for, or add a photo.");
    return;
  }
  if (photo) {
    const label = text ? `photo + “${text}”` : `photo: ${photo.name || "upload"}`;
    runStep(label, () => postForm("/api/search/image", {
      file: photo, modify: text, k: K, category: category(), rerank: state.captions,
    }), true);
  } else {
    runStep(`“${text}”`, () => postJSON("/api/search/text", { text, k: K, category: category() }), true);
  }
}

function refine(hit, modification) {
  runStep(`${hit.title || hit.item_id} + “${modification}”`, () => postJSON("/api/search/composed", {
    item_id: hit.item_id, modify: modification, k: K, category: category(), rerank: state.captions,
  }), false);
}

async function similar(hit) {
  const picture = await send(hit.image_url).then((r) => r.blob());
  runStep(`like ${hit.title || hit.item_id}`, () => postForm("/api/search/image", {
    file: new File([picture], "item.png", { type: picture.type || "image/png" }), k: K, category: category(),
  }), false);
}

// ---- rendering -----------------------------------------------------------------------------------

function render() {
  renderBreadcrumbs();
  const step = state.steps[state.active];
  const grid = $("#results");
  grid.replaceChildren();
  grid.dataset.step = String(state.active + 1);
  $("#empty").hidden = Boolean(step);
  if (!step) return;
  for (const hit of step.results) grid.appendChild(card(hit));
  const count = step.results.length;
  $("#status").textContent = `${count} result${count === 1 ? "" : "s"} · ${Math.round(step.tookMs)} ms`;
  if (count === 0) $("#status").textContent = "No results (try another category or other words).";
}

function renderBreadcrumbs() {
  const nav = $("#breadcrumbs");
  nav.replaceChildren();
  state.steps.forEach((step, i) => {
    if (i > 0) {
      const sep = document.createElement("span");
      sep.className = "crumb-sep";
      sep.textContent = "›";
      nav.appendChild(sep);
    }
    const crumb = document.createElement("button");
    crumb.type = "button";
    crumb.className = "crumb";
    crumb.dataset.testid = "crumb";
    crumb.title = step.label;
    crumb.textContent = step.label;
    if (i === state.active) crumb.setAttribute("aria-current", "step");
    crumb.addEventListener("click", () => {
      state.active = i;
      render();
    });
    nav.appendChild(crumb);
  });
}

function card(hit) {
  const node = $("#card-template").content.firstElementChild.cloneNode(true);
  node.dataset.itemId = hit.item_id;
  const img = $("img", node);
  if (apiKey) { // an <img> cannot send the key: fetch the picture with it
    send(hit.image_url).then((r) => (r.ok ? r.blob() : null)).then((blob) => {
      if (!blob) return;
      img.onload = () => URL.revokeObjectURL(img.src);
      img.src = URL.createObjectURL(blob);
    });
  } else {
    img.src = hit.image_url;
  }
  img.alt = hit.title || hit.item_id;
  $(".title", node).textContent = hit.title || hit.item_id;
  $(".category", node).textContent = [hit.category, hit.subcategory].filter(Boolean).join(" · ");
  $(".score", node).textContent = hit.score.toFixed(3);
  $(".score", node).title = "the model's score";

  const form = $(".modify-form", node);
  const input = $("input", form);
  $('[data-action="modify"]', node).addEventListener("click", () => {
    form.hidden = !form.hidden;
    if (!form.hidden) input.focus();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (text) refine(hit, text);
    else input.focus();
  });
  $('[data-action="similar"]', node).addEventListener("click", () => similar(hit).catch((e) => showError(e.message)));
  $('[data-action="caption"]', node).addEventListener("click", () => caption(hit, $(".caption", node)));
  $('[data-action="design"]', node).addEventListener("click", () => useForDesign(hit));
  return node;
}

async function caption(hit, box) {
  box.hidden = false;
  box.textContent = "Writing a caption…";
  try {
    const body = await postForm("/api/caption", { item_id: hit.item_id, style: "professional" });
    box.textContent = body.caption || "(the model wrote nothing)";
  } catch (error) {
    box.textContent = error.message;
  }
}

// ---- photo upload: file input and drag and drop --------------------------------------------------

function setUpload(file) {
  if (file && !file.type.startsWith("image/")) {
    showError(`${file.name}: not an image`);
    return;
  }
  state.upload = file || null;
  const chip = $("#upload-chip");
  chip.hidden = !file;
  const preview = $("#upload-preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.removeAttribute("src");
  if (file) {
    preview.src = URL.createObjectURL(file);
    $("#upload-name").textContent = file.name;
  } else {
    $("#image-input").value = "";
  }
}

function setUpDrop() {
  const overlay = $("#drop-overlay");
  let depth = 0;
  const hasFiles = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");
  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    depth += 1;
    overlay.hidden = false;
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) overlay.hidden = true;
  });
  document.addEventListener("dragover", (event) => {
    if (hasFiles(event)) event.preventDefault();
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    overlay.hidden = true;
    const file = Array.from(event.dataTransfer.files).find((f) => f.type.startsWith("image/"));
    if (!file) {
      showError("Drop an image file (PNG, JPEG, WebP).");
      return;
    }
    setUpload(file);
    searchFromForm();
  });
}

// ---- generation ----------------------------------------------------------------------------------

function useForDesign(hit) {
  state.designItem = hit;
  $("#generate-reference").hidden = false;
  $("#generate-reference-title").textContent = hit.title || hit.item_id;
  $("#generate-text").focus();
}

async function generate(event) {
  event.preventDefault();
  const text = $("#generate-text").value.trim();
  if (!text && !state.designItem) {
    $("#generate-status").textContent = "Describe a design, or pick an item with “Design”.";
    return;
  }
  const button = $("#generate-button");
  button.disabled = true;
  $("#generate-status").textContent = "Drawing… (this takes a while on a CPU)";
  try {
    const body = await postJSON("/api/generate", {
      text: text || null,
      item_id: state.designItem ? state.designItem.item_id : null,
      steps: Number($("#generate-steps").value) || 10,
      seed: Number($("#generate-seed").value) || 0,
    });
    const out = $("#generate-output");
    out.src = body.image;
    out.hidden = false;
    $("#generate-status").textContent = `${body.width}×${body.height} px · ${body.steps} steps · ${(body.took_ms / 1000).toFixed(1)} s`;
  } catch (error) {
    $("#generate-status").textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

// ---- start ---------------------------------------------------------------------------------------

async function start() {
  $("#search-form").addEventListener("submit", searchFromForm);
  $("#image-input").addEventListener("change", (event) => {
    setUpload(event.target.files[0]);
    if (state.upload) searchFromForm();
  });
  $("#upload-clear").addEventListener("click", () => setUpload(null));
  $("#generate-form").addEventListener("submit", generate);
  $("#generate-reference-clear").addEventListener("click", () => {
    state.designItem = null;
    $("#generate-reference").hidden = true;
  });
  setUpDrop();
  try {
    const categories = await api("/api/categories"); // first: asks for the key when one is needed
    const health = await api("/health"); // all of it with the key, only the status without
    state.captions = health.captions;
    $("#health").textContent = `${health.items} items · model ${health.model}`;
    $("#generate-steps").max = String(health.limits.max_steps);
    for (const name of categories.categories) {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      $("#category").appendChild(option);
    }
  } catch (error) {
    $("#health").textContent = `service unavailable: ${error.message}`;
    $("#health").classList.add("down");
  }
  document.body.dataset.ready = "true";
}

start();
