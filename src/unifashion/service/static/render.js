// The UniFashion search page, part 2 of 4: drawing the chain of searches (breadcrumbs), the result
// cards and their captions. Uses api.js's helpers; the cards' actions call app.js's refine, similar
// and useForDesign, and tryon.js's useForTryOn, when clicked.
"use strict";

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
  $('[data-action="tryon"]', node).addEventListener("click", () => useForTryOn(hit));
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
