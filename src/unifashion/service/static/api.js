// The UniFashion search page, part 1 of 4 (api.js, render.js, tryon.js, app.js, loaded in that order as plain
// scripts sharing one global scope): the page's state, requests to the service's JSON API (see /docs)
// with the API key, and the error and busy messages. No framework, no network access beyond this server.
"use strict";

const K = 24; // results per search

const $ = (selector, root = document) => root.querySelector(selector);

const state = {
  steps: [], // the chain of searches: {label, results, tookMs}; refinements append, a new search resets
  active: -1, // the step whose results are shown
  upload: null, // the photo chosen for the next search (a File)
  captions: true, // the index has gallery captions: composed searches re-rank with them
  designItem: null, // the item the generate panel starts from, or null
  tryonItem: null, // the catalog item the try-on panel puts on, or null
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
