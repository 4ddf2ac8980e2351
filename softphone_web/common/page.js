// What every page of softphone_web/ needs: finding and making elements, durations, the REST call (session
// cookie; an error names the field the server names), and the status line. Loaded before the page's own script.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);

function element(tag, text, className) {
  const made = document.createElement(tag);
  if (text !== undefined && text !== null) made.textContent = String(text);
  if (className) made.className = className;
  return made;
}

// Seconds as m:ss, or h:mm:ss from an hour on (a negative time shows as 0:00).
function duration(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

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

// Back to the sign-in form, the counterpart of signedInUser: `main` (the signed-in part) and the live
// indicator hidden, nobody named, `message` shown under the form.
function showSignInForm(main, message = "") {
  $("#who").textContent = "";
  say("");
  $("#login-section").hidden = false;
  main.hidden = true;
  $("#logout").hidden = true;
  if ($("#live")) $("#live").hidden = true;
  $("#login-message").textContent = message;
}
