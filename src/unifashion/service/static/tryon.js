// The UniFashion search page, part 3 of 4: the try-on panel. A person photo, the mask of the region to
// redraw (white), an optional pose render, and a garment (a photo, or a catalog item picked with "Try on"
// on a result), or with "Design" the garment drawn from the words alone: POST /api/tryon, the picture
// shown below. On a server without a try-on model the panel is disabled with a note.
"use strict";

function showTryOn(available, maxSteps) {
  document.body.dataset.tryon = available ? "true" : "false";
  $("#tryon-note").hidden = available;
  $("#tryon-fields").disabled = !available;
  $("#tryon-steps").max = String(maxSteps);
}

function useForTryOn(hit) {
  state.tryonItem = hit;
  $("#tryon-item").hidden = false;
  $("#tryon-item-title").textContent = hit.title || hit.item_id;
  $("#tryon-garment").value = ""; // the item replaces a chosen garment photo
  $("#tryon-panel").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

function clearTryOnItem() {
  state.tryonItem = null;
  $("#tryon-item").hidden = true;
}

function chosen(selector) {
  return $(selector).files[0] || null;
}

// what is missing before anything is sent, as one line; null when the request can go
function tryOnProblem(design, caption) {
  if (!chosen("#tryon-person")) return "Choose the person photo.";
  if (!chosen("#tryon-mask")) return "Choose the mask (white where the garment goes).";
  if (design) return caption ? null : "A design is drawn from the words alone: describe the garment.";
  if (!chosen("#tryon-garment") && !state.tryonItem) return "Choose a garment photo, or “Try on” a result.";
  return null;
}

async function tryOn(event) {
  event.preventDefault();
  const status = $("#tryon-status");
  const design = $("#tryon-design").checked;
  const caption = $("#tryon-caption").value.trim();
  const problem = tryOnProblem(design, caption);
  if (problem) {
    status.textContent = problem;
    return;
  }
  const button = $("#tryon-button");
  button.disabled = true;
  status.textContent = design ? "Designing… (this takes a while on a CPU)" : "Trying on… (this takes a while on a CPU)";
  try {
    const body = await postForm("/api/tryon", {
      person: chosen("#tryon-person"),
      mask: chosen("#tryon-mask"),
      pose: chosen("#tryon-pose"),
      garment: design || state.tryonItem ? null : chosen("#tryon-garment"),
      item_id: !design && state.tryonItem ? state.tryonItem.item_id : null,
      caption,
      design: design ? "true" : null,
      steps: Number($("#tryon-steps").value) || 10,
      seed: Number($("#tryon-seed").value) || 0,
    });
    const out = $("#tryon-output");
    out.src = body.image;
    out.hidden = false;
    const what = body.design ? "design" : "try-on";
    status.textContent = `${what} · ${body.width}×${body.height} px · ${body.steps} steps · ${(body.took_ms / 1000).toFixed(1)} s`;
  } catch (error) {
    status.textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

function setUpTryOn() {
  $("#tryon-form").addEventListener("submit", tryOn);
  $("#tryon-item-clear").addEventListener("click", clearTryOnItem);
  $("#tryon-garment").addEventListener("change", () => {
    if (chosen("#tryon-garment")) clearTryOnItem(); // a photo replaces a picked item
  });
}
