// The agent's page: presence, offers with their screen pop, current work and wrap-up notes.
// Talks only to the server: its REST API (/api/v1/..., signed in with the session cookie) and its
// socket.io /agent namespace, spoken by the small client below (Engine.IO 4 over a WebSocket), so
// nothing is fetched from elsewhere and there is no build step. $, api() and say() come from
// /common/static/page.js (loaded first).
"use strict";

const NUMBER_FIELDS = ["caller", "phone", "from_number", "number"];  // where an item's data names the caller
const HIDDEN_DATA = new Set([...NUMBER_FIELDS, "screenpop", "call_id", "called"]);
const NOTES_ATTEMPTS = 5;  // looks for the call log, a second apart, before saying it is not there yet

const state = {
  me: null,
  agent: null,
  statuses: [],
  items: new Map(),   // item id -> item (GET /api/v1/agents/me/work), offered to or held by this agent
  offset: 0,          // server clock minus browser clock, seconds
  pops: new Map(),    // item id -> {status, pop?, contact?, chosen?, error?}
  calls: new Map(),   // call id (data.call_id of a voice item) -> the call's last call.* event data
  cards: new Map(),   // item id -> its card element
  live: null,
};

function button(text, className, onClick) {
  const made = element("button", text, className);
  made.type = "button";
  made.addEventListener("click", onClick);
  return made;
}

function now() { return Date.now() / 1000 + state.offset; }

function onLiveEvent(topic, payload) {
  const data = (payload && payload.data) || {};
  if (topic.startsWith("call.")) {
    if (typeof data.call_id !== "string") return;
    state.calls.set(data.call_id, data);
    const pop = state.pops.get(data.call_id);
    if (data.screenpop && (!pop || !pop.pop)) {
      state.pops.set(data.call_id, { status: "ready", pop: data.screenpop });
    }
    renderItems();
    return;
  }
  if (topic === "work_item.timed_out" && data.item && state.items.has(data.item.id)) {
    say(`The ${data.item.channel} offer timed out and went to the next agent.`);
  } else if (topic === "work_item.withdrawn" && data.item && state.items.has(data.item.id)) {
    say(`The ${data.item.channel} item was withdrawn (${data.reason || "withdrawn"}).`);
  } else if (topic === "work_item.moved" && data.item && state.items.has(data.item.id)) {
    say(`A supervisor moved the ${data.item.channel} item to another queue.`);
  }
  refresh().catch(failed);
}

function setLive(on) {
  $("#live").classList.toggle("on", on);
  $("#live").title = on ? "Live: work is pushed to this page" : "Not connected: reconnecting";
  if (on) refresh().catch(failed);  // catch up on what was missed
}

// --- state from the server -----------------------------------------------------------------------------

// One load at a time; calls made while it runs get exactly one more (common/live.js).
const refresh = coalesced(load);

async function load() {
  let work;
  try {
    work = await api("GET", "/api/v1/agents/me/work");
  } catch (error) {
    if (error.status === 404) {
      state.agent = null;
      state.items = new Map();
      $("#no-profile").hidden = false;
      $("#presence").hidden = true;
      renderItems();
      return;
    }
    throw error;
  }
  state.offset = work.server_time - Date.now() / 1000;
  state.agent = work.agent;
  state.statuses = work.statuses;
  const before = state.items;
  state.items = new Map(work.items.map((item) => [item.id, item]));
  for (const [id, item] of before) {  // work that is gone: a long shift must not pile it up
    if (!state.items.has(id)) {
      state.pops.delete(id);
      state.calls.delete(callIdOf(item));
    }
  }
  $("#no-profile").hidden = true;
  $("#presence").hidden = false;
  renderPresence();
  renderItems();
  tick();
}

// --- presence --------------------------------------------------------------------------------------------

function renderPresence() {
  const select = $("#status");
  const names = state.statuses.includes(state.agent.status)
    ? state.statuses : [...state.statuses, state.agent.status];
  if ([...select.options].map((option) => option.value).join("\n") !== names.join("\n")) {
    select.replaceChildren(...names.map((name) => {
      const option = element("option", name);
      option.value = name;
      return option;
    }));
  }
  select.value = state.agent.status;
  $("#capacity").textContent = `Capacity ${state.agent.used} of ${state.agent.capacity} used`;
}

$("#status").addEventListener("change", async (event) => {
  const wanted = event.target.value;
  try {
    await api("PUT", "/api/v1/agents/me/status", { status: wanted });
    say(`You are ${wanted}.`, true);
    await refresh();
  } catch (error) {
    failed(error);
    if (state.agent) event.target.value = state.agent.status;
  }
});

// --- offers and work -------------------------------------------------------------------------------------

function kindOf(item) { return item.state === "offered" ? "offer" : "work"; }

function numberOf(item) {
  const data = item.data || {};
  const found = NUMBER_FIELDS.find((name) => typeof data[name] === "string" && data[name]);
  return found ? data[found] : null;
}

function renderItems() {
  for (const [id, card] of state.cards) {
    const item = state.items.get(id);
    if (!item || card.dataset.kind !== kindOf(item)) {
      card.remove();
      state.cards.delete(id);
    }
  }
  for (const item of state.items.values()) {
    let card = state.cards.get(item.id);
    if (!card) {
      card = makeCard(item);
      state.cards.set(item.id, card);
      $(kindOf(item) === "offer" ? "#offers" : "#work").appendChild(card);
      resolvePop(item);
    }
    updateCard(card, item);
  }
  const offers = [...state.items.values()].filter((item) => kindOf(item) === "offer").length;
  $("#no-offers").hidden = offers > 0;
  document.title = offers ? `(${offers}) offer${offers > 1 ? "s" : ""} · cti-server agent` : "cti-server agent";
  $("#no-work").hidden = [...state.items.values()].some((item) => kindOf(item) === "work");
  const wrapping = [...state.items.values()].filter((item) => item.state === "assigned" && item.ended_at);
  $("#acw").hidden = wrapping.length === 0;
}

// The call a voice item is about: its data.call_id (a call queued again after an accepted ring that was
// not answered gets a new item id, "<call id>.<n>"), else the item id.
function callIdOf(item) {
  return item.data && typeof item.data.call_id === "string" ? item.data.call_id : item.id;
}

function makeCard(item) {
  const card = $("#card-template").content.firstElementChild.cloneNode(true);
  const kind = kindOf(item);
  card.dataset.id = item.id;
  card.dataset.kind = kind;
  card.classList.add(kind);
  $(".channel", card).textContent = item.channel;
  $(".queue", card).textContent = `queue ${item.queue}`;
  const actions = $(".actions", card);
  const voice = item.channel === "voice";
  if (kind === "offer") {
    if (voice) {
      actions.appendChild(element("span",
        "Pick up your desk phone or press Accept to take the call; Decline (or reject it on the phone) passes it on.",
        "hint"));
    }
    const reason = element("input", null, "reason");
    reason.placeholder = "Reason to decline";
    reason.maxLength = 200;
    reason.setAttribute("aria-label", "Decline reason");
    actions.append(
      button("Accept", "accept", () => step(item, "accept")),
      reason,
      button("Decline", "decline", () => step(item, "decline", { reason: reason.value.trim() })),
    );
  } else {
    if (voice) actions.appendChild(notesForm(item));
    else actions.appendChild(button("Finish", "finish", () => step(item, "end")));
    actions.appendChild(button("Close", "close", () => step(item, "close")));
  }
  return card;
}

function updateCard(card, item) {
  const wrapUp = item.state === "assigned" && item.ended_at !== null && item.ended_at !== undefined;
  card.classList.toggle("wrap-up", wrapUp);
  let label = item.state === "offered" ? "Offered" : "In progress";
  if (wrapUp) label = "After-call work";
  else if (item.hold_since) label = "On hold";
  $(".state", card).textContent = label;
  const finish = $(".finish", card);
  if (finish) finish.hidden = wrapUp;
  const close = $(".close", card);
  const call = state.calls.get(callIdOf(item));
  if (close && item.channel === "voice") close.hidden = !wrapUp;  // the call's end starts after-call work
  const callState = $(".call-state", card);
  callState.hidden = item.channel !== "voice";
  callState.textContent = callText(item, call);
  renderPop(item.id);
}

// A voice offer is the desk phone ringing: the calls layer rings the agent's registered phones when the
// engine offers the call (and declines at once when none is registered). Answering the phone is the
// accept; Accept on this page takes the call too and the phone, still ringing, connects it when answered
// (a call accepted but not answered in time goes back to the queue); Decline cancels the ringing at once.
function callText(item, call) {
  if (item.state === "offered") return "Your desk phone is ringing";
  const connected = call && ["answered", "held", "ended"].includes(call.state);
  if (item.state === "assigned" && !item.ended_at && !connected) return "Accepted: answer your desk phone";
  if (!call) return "";
  switch (call.state) {
    case "answered": return "Connected on your desk phone";
    case "held": return "Call on hold";
    case "ended": return "Call ended";
    default: return `Call ${call.state}`;
  }
}

async function step(item, action, body) {
  const names = { accept: "Accepted", decline: "Declined", end: "Finished", close: "Closed" };
  try {
    await api("POST", `/api/v1/work-items/${encodeURIComponent(item.id)}/${action}`, body);
    const why = action === "decline" && body.reason ? ` (${body.reason})` : "";
    say(`${names[action]} the ${item.channel} item${why}.`, true);
  } catch (error) {
    failed(error);
    if (error.status === 401) return;
  }
  await refresh().catch(failed);
}

function tick() {
  const t = now();
  if (state.agent) $("#status-time").textContent = duration(t - state.agent.status_since);
  let acw = null;
  for (const item of state.items.values()) {
    const card = state.cards.get(item.id);
    if (!card) continue;
    const timer = $(".timer", card);
    if (item.state === "offered") {
      timer.textContent = item.offer_deadline ? duration(item.offer_deadline - t) : "";
      timer.title = "Time left to accept";
    } else if (item.ended_at) {
      const left = item.wrap_up_deadline && item.wrap_up_deadline > item.ended_at
        ? item.wrap_up_deadline - t : null;
      timer.textContent = left === null ? duration(t - item.ended_at) : duration(left);
      timer.title = left === null ? "After-call work so far" : "After-call work left";
      acw = acw === null ? timer.textContent : acw;
    } else {
      timer.textContent = duration(t - (item.accepted_at || t));
      timer.title = "Time on this item";
    }
  }
  $("#acw-time").textContent = acw || "";
}

// --- the screen pop ---------------------------------------------------------------------------------------

function resolvePop(item) {
  if (state.pops.has(item.id)) return;
  const data = item.data || {};
  const call = state.calls.get(callIdOf(item));
  const number = numberOf(item);
  const entry = { status: "loading" };
  state.pops.set(item.id, entry);
  let lookup;
  if (call && call.screenpop) lookup = Promise.resolve({ pop: call.screenpop });
  else if (data.screenpop && typeof data.screenpop === "object") lookup = Promise.resolve({ pop: data.screenpop });
  else if (number) {
    lookup = api("GET", `/api/v1/screenpop?number=${encodeURIComponent(number)}`).then((pop) => ({ pop }));
  } else if (item.record) {
    lookup = api("GET", `/api/v1/contacts/${encodeURIComponent(item.record)}`).then((contact) => ({ contact }));
  } else lookup = Promise.resolve({});
  lookup.then((found) => Object.assign(entry, found, { status: "ready" }),
              (error) => Object.assign(entry, { status: "error", error: error.message }))
    .then(() => renderPop(item.id));
}

function details(pairs) {
  const list = element("dl");
  for (const [name, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    const label = name.replaceAll("_", " ");
    list.append(element("dt", label.charAt(0).toUpperCase() + label.slice(1)), element("dd", value));
  }
  return list;
}

function renderPop(itemId) {
  const card = state.cards.get(itemId);
  const item = state.items.get(itemId);
  const entry = state.pops.get(itemId);
  if (!card || !item || !entry) return;
  const box = $(".pop", card);
  const key = JSON.stringify([entry.status, entry.chosen || null, entry.contact ? entry.contact.id : null]);
  if (box.dataset.key === key) return;  // unchanged: keep what the agent is typing in the form
  box.dataset.key = key;
  const parts = [];
  const extra = Object.entries(item.data || {})
    .filter(([name, value]) => !HIDDEN_DATA.has(name) && ["string", "number", "boolean"].includes(typeof value))
    .slice(0, 8);
  if (entry.status === "loading") parts.push(element("p", "Looking up the caller…", "hint"));
  else if (entry.status === "error") parts.push(element("p", `No screen pop: ${entry.error}`, "hint"));
  else if (entry.contact) parts.push(...contactView(entry.contact));
  else if (entry.pop) parts.push(...popView(item, entry));
  else parts.push(element("p", "No caller details came with this item.", "hint"));
  if (extra.length) parts.push(details(extra));
  box.replaceChildren(...parts);
}

function contactView(contact) {
  const phones = (contact.phones || []).map((phone) => phone.number).join(", ");
  const heading = element("h3", contact.display_name || "Contact", "contact-name");
  return [heading, details([["Phone", phones], ["Email", contact.email], ["Record", contact.id]])];
}

function matchView(match) {
  return details([["Number", match.matched_number], ["Email", match.email], ["Account", match.account_name],
                  ["Record", match.contact_id]]);
}

function popView(item, entry) {
  const pop = entry.pop;
  const number = pop.number || pop.caller || numberOf(item) || "";
  const matches = pop.matches || [];
  if (pop.action === "record" && matches.length) {
    return [element("h3", matches[0].display_name, "contact-name"), matchView(matches[0])];
  }
  if (pop.action === "new_contact" || (!matches.length && pop.action !== "nothing")) {
    return [element("h3", `New caller ${number}`), newContactForm(item, pop)];
  }
  if (pop.action === "nothing" && !matches.length) return [element("p", `Caller ${number}`, "hint")];
  const heading = element("h3", `${matches.length}${pop.more_matches ? "+" : ""} contacts match ${number}`);
  const list = element("ul", null, "matches");
  for (const match of matches) {
    const row = element("li", null, match.contact_id === entry.chosen ? "chosen" : "");
    row.append(`${match.display_name}${match.account_name ? ` (${match.account_name})` : ""} `);
    if (match.contact_id === entry.chosen) row.append(" ✓");
    else row.appendChild(button("This one", "choose", () => { entry.chosen = match.contact_id; renderPop(item.id); }));
    list.appendChild(row);
  }
  const chosen = matches.find((match) => match.contact_id === entry.chosen);
  return chosen ? [heading, list, matchView(chosen)] : [heading, list];
}

function newContactForm(item, pop) {
  const form = element("form", null, "new-contact");
  const field = (label, name, value = "") => {
    const wrap = element("label", `${label} `);
    const input = element("input");
    input.name = name;
    input.value = value;
    wrap.appendChild(input);
    return wrap;
  };
  const prefill = pop.prefill || {};
  form.append(field("First name", "first_name"), field("Last name", "last_name"), field("Email", "email"),
              field("Phone", "phone", prefill.phone || pop.number || pop.caller || ""));
  const save = element("button", "Save contact");
  save.type = "submit";
  form.appendChild(save);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form).entries());
    const body = { first_name: values.first_name, last_name: values.last_name,
                   phones: values.phone ? [{ number: values.phone }] : [] };
    if (values.email) body.email = values.email;
    try {
      const contact = await api("POST", "/api/v1/contacts", body);
      const entry = state.pops.get(item.id);
      if (entry) Object.assign(entry, { contact, pop: null });
      say(`Saved ${contact.display_name}.`, true);
      renderPop(item.id);
    } catch (error) { failed(error); }
  });
  return form;
}

// --- wrap-up notes of a call (the call log the server writes when the call ends) ---------------------------

function notesForm(item) {
  const form = element("form", null, "notes");
  const notes = element("textarea");
  notes.name = "notes";
  notes.placeholder = "Wrap-up notes";
  notes.setAttribute("aria-label", "Wrap-up notes");
  const disposition = element("input");
  disposition.name = "disposition";
  disposition.placeholder = "Disposition";
  disposition.maxLength = 32;
  disposition.setAttribute("aria-label", "Disposition");
  const save = element("button", "Save notes");
  save.type = "submit";
  form.append(notes, disposition, save);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const callId = (item.data && item.data.call_id) || item.id;
    try {
      // The server writes the call log just after the call ends: give it a few seconds.
      let found = { call_logs: [] };
      for (let attempt = 0; attempt < NOTES_ATTEMPTS; attempt += 1) {
        if (attempt) await new Promise((resolve) => setTimeout(resolve, 1000));
        found = await api("GET", `/api/v1/call-logs?call_id=${encodeURIComponent(callId)}`);
        if (found.call_logs.length) break;
      }
      if (!found.call_logs.length) {
        say("The call log is written when the call ends; save the notes again then.");
        return;
      }
      const body = { notes: notes.value };
      if (disposition.value.trim()) body.disposition = disposition.value.trim();
      const entry = state.pops.get(item.id);
      if (entry && entry.chosen) body.contact_id = entry.chosen;
      if (entry && entry.contact) body.contact_id = entry.contact.id;
      await api("PATCH", `/api/v1/call-logs/${encodeURIComponent(found.call_logs[0].id)}`, body);
      say("Notes saved on the call log.", true);
    } catch (error) { failed(error); }
  });
  return form;
}

// --- signing in and out ------------------------------------------------------------------------------------

// Back to the sign-in form: live events stop and nothing of the last agent stays on the page.
function showLogin(message = "") {
  if (state.live) state.live.close();
  state.live = null;
  for (const card of state.cards.values()) card.remove();
  state.cards.clear();
  state.items.clear();
  state.pops.clear();
  state.calls.clear();
  state.agent = null;
  state.me = null;
  showSignInForm($("#agent"), message);
}

// A failed call: a session that ended (expired, signed out elsewhere) brings the sign-in form back.
function failed(error) {
  if (error.status === 401) showLogin("Your session has ended: sign in again.");
  else say(error.message);
}

async function showSignedIn() {
  const me = await signedInUser();
  if (me === null) {
    showLogin();
    return;
  }
  state.me = me;
  $("#agent").hidden = false;
  if (me.role !== "agent" && me.role !== "supervisor") {
    say("This page is for agents. Sign out and sign in with an agent's credentials.");
    $("#presence").hidden = true;
    return;
  }
  say("");
  $("#live").hidden = false;
  state.live = followLive("/agent", onLiveEvent, setLive, failed);
  await refresh().catch(failed);
}

wireSignIn(showSignedIn, () => {
  if (state.live) state.live.close();
  state.live = null;
});

setInterval(tick, 1000);
showSignedIn();
