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

// Signing in and out, the same on every page: #login-form posts its fields to /api/v1/login (a refusal
// is shown in #login-message) and #logout ends the session; `show` then redraws the page for whoever is
// signed in now. `leaving` runs first on sign-out (close live events, forget the last user's data).
function wireSignIn(show, leaving = () => {}) {
  $("#login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("#login-message").textContent = "";
    try {
      await api("POST", "/api/v1/login", Object.fromEntries(new FormData(event.target).entries()));
    } catch (error) {
      $("#login-message").textContent = error.message;
      return;
    }
    event.target.reset();
    await show();
  });
  $("#logout").addEventListener("click", async () => {
    leaving();
    await api("POST", "/api/v1/logout").catch(() => {});
    await show();
  });
}

// Who is signed in (GET /api/v1/me), named in #who with the sign-in form hidden; null when nobody is.
async function signedInUser() {
  let me;
  try {
    me = await api("GET", "/api/v1/me");
  } catch (error) {
    return null;
  }
  $("#who").textContent = `${me.name} (${me.role})`;
  $("#logout").hidden = false;
  $("#login-section").hidden = true;
  return me;
}
