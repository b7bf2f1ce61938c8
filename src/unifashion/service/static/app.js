// The UniFashion search page, last part: the searches and their chain of refinements, the photo
// upload, the generate panel, and wiring the forms and events at start (after api.js, render.js and
// tryon.js).
"use strict";

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
  setUpTryOn();
  try {
    const categories = await api("/api/categories"); // first: asks for the key when one is needed
    const health = await api("/health"); // all of it with the key, only the status without
    state.captions = health.captions;
    $("#health").textContent = `${health.items} items · model ${health.model}${health.tryon ? " · try-on" : ""}`;
    $("#generate-steps").max = String(health.limits.max_steps);
    showTryOn(health.tryon, health.limits.max_steps);
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
