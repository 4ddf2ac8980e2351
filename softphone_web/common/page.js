// What every page of softphone_web/ needs: element lookup, the REST call (session cookie; an error
// names the field the server names), and the status line. Loaded before the page's own script.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.field ? `${data.field}: ${data.error}` : data.error || response.statusText);
    error.status = response.status;
    throw error;
  }
  return data;
}

function say(text, ok = false) {
  const message = $("#message");
  message.textContent = text;
  message.className = ok ? "ok" : "";
}
