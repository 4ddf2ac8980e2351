// The admin page: lists call centers and their members, assigns users by picking them.
// Talks only to the server's REST API (/api/v1/...), signed in with the session cookie, through
// api() of /common/static/page.js (loaded first).
"use strict";

// selected: the call center picked in the list; shown: the one whose members the detail shows now
// (they differ while its data is on the way).
const state = { callCenters: [], users: [], selected: null, shown: null };

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function callCenterName(id) {
  const found = state.callCenters.find((c) => c.id === id);
  return found ? found.name : "no call center";
}

function renderCallCenters() {
  const body = $("#call-centers tbody");
  body.replaceChildren();
  for (const center of state.callCenters) {
    const row = document.createElement("tr");
    row.className = "selectable" + (center.id === state.selected ? " selected" : "");
    row.dataset.id = center.id;
    for (const value of [center.name, center.phone_region, center.recording_policy,
                         center.member_count, center.did_count]) {
      cell(row, String(value));
    }
    row.tabIndex = 0;
    row.addEventListener("click", () => select(center.id));
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); select(center.id); }
    });
    body.appendChild(row);
  }
}

async function renderDetail() {
  const center = state.callCenters.find((c) => c.id === state.selected);
  if (!center) {
    state.shown = null;
    $("#detail").hidden = true;
    $("#no-detail").hidden = false;
    return;
  }
  // Until this call center's data is here, the detail still shows the previous one: grey it out and
  // take no clicks, so nobody assigns from a list that belongs to another call center.
  $("#detail").classList.toggle("loading", state.shown !== center.id);
  const [members, dids] = await Promise.all([
    api("GET", `/api/v1/call-centers/${center.id}/members`),
    api("GET", `/api/v1/call-centers/${center.id}/dids`),
  ]);
  if (state.selected !== center.id) return;  // a later pick owns the detail now
  const candidates = $("#candidates");
  // A re-render of the same call center (after an assignment, a second click) keeps what is picked.
  const picked = new Set(state.shown === center.id
    ? [...candidates.selectedOptions].map((option) => option.value) : []);
  $("#detail-title").textContent = center.name;
  const body = $("#members tbody");
  body.replaceChildren();
  for (const user of members.members) {
    const row = document.createElement("tr");
    cell(row, user.display_name ? `${user.display_name} (${user.username})` : user.username);
    cell(row, user.role);
    const remove = document.createElement("button");
    remove.textContent = "Remove";
    remove.addEventListener("click", () => unassign(center.id, user.id));
    cell(row, "").appendChild(remove);
    body.appendChild(row);
  }
  if (!members.members.length) {
    const row = document.createElement("tr");
    cell(row, "No members yet.").colSpan = 3;
    body.appendChild(row);
  }
  candidates.replaceChildren();
  for (const user of state.users) {
    if (user.role === "admin" || user.call_center_id === center.id) continue;
    const option = document.createElement("option");
    option.value = user.id;
    option.selected = picked.has(user.id);
    option.textContent = `${user.username} (${user.role}, ${callCenterName(user.call_center_id)})`;
    candidates.appendChild(option);
  }
  const nobodyLeft = candidates.options.length === 0;
  candidates.hidden = nobodyLeft;
  $("#no-candidates").hidden = !nobodyLeft;
  $("#assign-form button[type=submit]").disabled = nobodyLeft;
  const didItems = dids.dids.map((did) =>
    did.description ? `${did.number} — ${did.description}` : did.number);
  $("#dids").replaceChildren(...(didItems.length ? didItems : ["None."]).map((text) => {
    const item = document.createElement("li");
    item.textContent = text;
    return item;
  }));
  state.shown = center.id;
  $("#detail").classList.remove("loading");
  $("#detail").hidden = false;
  $("#no-detail").hidden = true;
}

async function reload() {
  const [centers, users] = await Promise.all([api("GET", "/api/v1/call-centers"), api("GET", "/api/v1/users")]);
  state.callCenters = centers.call_centers;
  state.users = users.users;
  renderCallCenters();
  await renderDetail();
}

async function select(id) {
  if (id !== state.selected) say("");
  state.selected = id;
  renderCallCenters();
  try {
    await renderDetail();
  } catch (error) { say(error.message); }
}

async function unassign(centerId, userId) {
  try {
    await api("DELETE", `/api/v1/call-centers/${centerId}/members/${userId}`);
    say("Removed.", true);
    await reload();
  } catch (error) { say(error.message); }
}

async function showSignedIn() {
  const me = await signedInUser();
  if (me === null) {
    $("#login-section").hidden = false;
    $("#admin").hidden = true;
    $("#logout").hidden = true;
    return;
  }
  $("#admin").hidden = false;
  const isAdmin = me.role === "admin";
  $("#workspace").hidden = !isAdmin;
  if (!isAdmin) {
    say("This page is for admins. Sign out and sign in with an admin's credentials.");
    return;
  }
  say("");
  try {
    await reload();
  } catch (error) { say(error.message); }
}

function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

wireSignIn(showSignedIn, () => {
  state.selected = null;
  state.shown = null;
  $("#who").textContent = "";
  say("");
});

$("#new-call-center").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const created = await api("POST", "/api/v1/call-centers", formData(event.target));
    event.target.reset();
    say(`Created ${created.name}.`, true);
    state.selected = created.id;
    await reload();
  } catch (error) { say(error.message); }
});

$("#new-user").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const created = await api("POST", "/api/v1/users", formData(event.target));
    event.target.reset();
    say(`Created ${created.username}.`, true);
    await reload();
  } catch (error) { say(error.message); }
});

$("#assign-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const picked = [...$("#candidates").selectedOptions].map((option) => option.value);
  if (!picked.length) { say("Pick at least one user."); return; }
  try {
    for (const userId of picked) {
      await api("PUT", `/api/v1/call-centers/${state.selected}/members/${userId}`);
    }
    const center = callCenterName(state.selected);
    const who = picked.length === 1
      ? state.users.find((user) => user.id === picked[0]).username : `${picked.length} users`;
    say(`Assigned ${who} to ${center}.`, true);
    await reload();
  } catch (error) { say(error.message); }
});

showSignedIn();
