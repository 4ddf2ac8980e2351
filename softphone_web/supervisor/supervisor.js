// The supervisor's page: the live picture of the call center's queues, waiting work and agents, with
// two interventions (an agent's status, moving a waiting item to another queue or agent).
// Talks only to the server: its REST API (/api/v1/..., signed in with the session cookie) and the
// /supervisor socket.io namespace (followLive and coalesced from /common/static/live.js). $, element,
// duration, api, say, wireSignIn, signedInUser and showSignInForm come from /common/static/page.js.
"use strict";

const REFRESH_DELAY_MS = 300;    // events arrive in bursts (an offer is queued + offered): read REST once
const REFERENCE_MAX_AGE_S = 10;
const PER_QUEUE = 50;            // waiting items listed per queue (the first to be served)  // names and statuses are read again for an unknown id at most this often

const state = {
  me: null,
  live: null,
  queues: new Map(),    // queue id -> figures (GET /api/v1/supervisor/queues) and seen: browser time read
  agents: new Map(),    // agent id -> figures (GET /api/v1/supervisor/agents) and seen
  items: new Map(),     // item id -> waiting item (GET /api/v1/supervisor/work-items)
  windowS: 0,
  offset: 0,            // server clock minus browser clock, seconds
  names: new Map(),     // queue id -> name; user id -> display name or username
  statuses: [],         // admin-defined status names
  referenceAt: 0,       // browser time the names and statuses were read
  center: "",           // an admin's pick of call center ("": every one)
};

function browserNow() { return Date.now() / 1000; }

function percent(fraction) {
  return fraction === null || fraction === undefined ? "—" : `${Math.round(fraction * 100)}%`;
}

function queueName(id) {
  const name = state.names.get(`queue:${id}`);
  return name && name !== id ? `${name} (${id})` : id;
}

function agentName(agent) {
  return agent.name || state.names.get(`user:${agent.agent}`) || agent.agent;
}

// Keeps one row per key in `tbody`, in the order of `keys`: `make(key)` builds a missing row, `update(row,
// key)` refreshes one in place (so a select a person is using is not rebuilt under them).
function syncRows(tbody, keys, make, update) {
  const rows = new Map([...tbody.rows].map((row) => [row.dataset.id, row]));
  const wanted = new Set(keys);
  for (const [key, row] of rows) if (!wanted.has(key)) row.remove();
  let previous = null;
  for (const key of keys) {
    let row = rows.get(key);
    if (!row) row = make(key);
    row.dataset.id = key;
    update(row, key);
    const place = previous ? previous.nextSibling : tbody.firstChild;
    if (place !== row) tbody.insertBefore(row, place);
    previous = row;
  }
}

function cells(row, count) {
  while (row.cells.length < count) row.insertCell();
  return [...row.cells];
}

// Replaces a select's options with `choices` ([value, label] or {group: [[value, label], ...]}) only when
// they changed, keeping what was picked.
function setOptions(select, choices) {
  const key = JSON.stringify(choices);
  if (select.dataset.key === key) return;
  select.dataset.key = key;
  const picked = select.value;
  const option = ([value, label]) => Object.assign(element("option", label), { value });
  select.replaceChildren(...choices.map((choice) => {
    if (Array.isArray(choice)) return option(choice);
    const [[label, entries]] = Object.entries(choice);
    const group = element("optgroup");
    group.label = label;
    group.append(...entries.map(option));
    return group;
  }));
  if ([...select.options].some((o) => o.value === picked)) select.value = picked;
}

// --- state from the server -----------------------------------------------------------------------------

const refresh = coalesced(load);
let scheduled = null;

function refreshSoon() {
  if (scheduled) return;
  scheduled = setTimeout(() => {
    scheduled = null;
    refresh().catch(failed);
  }, REFRESH_DELAY_MS);
}

async function loadReference() {
  const [queues, statuses, users] = await Promise.all([
    api("GET", "/api/v1/routing/queues"),
    api("GET", "/api/v1/routing/statuses"),
    api("GET", "/api/v1/users").catch(() => ({ users: [] })),  // only for names; the page works without
  ]);
  state.names = new Map([
    ...queues.queues.map((queue) => [`queue:${queue.id}`, queue.name || queue.id]),
    ...users.users.map((user) => [`user:${user.id}`, user.display_name || user.username]),
  ]);
  state.statuses = statuses.statuses.map((status) => status.name);
  state.referenceAt = browserNow();
  if (state.me && state.me.role === "admin") {
    const centers = await api("GET", "/api/v1/call-centers");
    setOptions($("#center"), [["", "Every call center"], ...centers.call_centers.map((c) => [c.id, c.name])]);
    $("#center").value = state.center;
  }
}

$("#center").addEventListener("change", (event) => {
  state.center = event.target.value;
  refresh().catch(failed);
});

// The supervisor routes answer for the supervisor's own call center; an admin's for the one picked.
function scoped(path, query = {}) {
  const params = new URLSearchParams(query);
  if (state.center) params.set("call_center", state.center);
  const search = params.toString();
  return search ? `${path}?${search}` : path;
}

async function load() {
  const [queues, agents, waiting] = await Promise.all([
    api("GET", scoped("/api/v1/supervisor/queues")),
    api("GET", scoped("/api/v1/supervisor/agents")),
    api("GET", scoped("/api/v1/supervisor/work-items", { per_queue: PER_QUEUE })),
  ]);
  if (!state.live) return;  // signed out while reading: keep nothing of it
  const seen = browserNow();
  state.offset = waiting.server_time - seen;
  state.windowS = queues.window_s;
  state.queues = new Map(queues.queues.map((queue) => [queue.queue, { ...queue, seen }]));
  state.agents = new Map(agents.agents.map((agent) => [agent.agent, { ...agent, seen }]));
  state.items = new Map(waiting.items.map((item) => [item.id, item]));
  const unknown = [...state.queues.keys()].some((id) => !state.names.has(`queue:${id}`))
    || agents.agents.some((agent) => !agent.name && !state.names.has(`user:${agent.agent}`));
  if (!state.referenceAt || (unknown && seen - state.referenceAt > REFERENCE_MAX_AGE_S)) await loadReference();
  render();
}

// --- live events ---------------------------------------------------------------------------------------

function onLiveEvent(topic, payload) {
  const data = (payload && payload.data) || {};
  if (state.center && payload && payload.call_center !== state.center) return;  // an admin watches another
  if (topic === "queue.figures" && state.queues.has(data.queue)) {
    state.queues.set(data.queue, { ...data, seen: browserNow() });  // the periodic figures: no read needed
    renderQueues();
    tick();
    return;
  }
  refreshSoon();  // work_item.*, agent.*, a new queue: read the picture again
}

function setLive(on) {
  $("#live").classList.toggle("on", on);
  $("#live").title = on ? "Live: changes are pushed to this page" : "Not connected: reconnecting";
  if (!on) return;
  // Reconnected: names and statuses too may have changed meanwhile.
  if (browserNow() - state.referenceAt > REFERENCE_MAX_AGE_S) state.referenceAt = 0;
  refresh().catch(failed);  // catch up on what was missed
}

// Live events stop, and so does a read they asked for.
function stopLive() {
  if (state.live) state.live.close();
  state.live = null;
  clearTimeout(scheduled);
  scheduled = null;
}

// --- rendering -----------------------------------------------------------------------------------------

function render() {
  renderQueues();
  renderWaiting();
  renderAgents();
  tick();
}

function renderQueues() {
  const minutes = Math.round(state.windowS / 60);
  $("#window").textContent = state.windowS ? `(ASA, service level, abandon rate: last ${minutes} min)` : "";
  const ids = [...state.queues.keys()].sort((a, b) => queueName(a).localeCompare(queueName(b)));
  syncRows($("#queues tbody"), ids, () => document.createElement("tr"), (row, id) => {
    const queue = state.queues.get(id);
    const [name, waiting, offered, , asa, level, abandon] = cells(row, 7);
    row.cells[3].className = "longest";
    name.textContent = queueName(id);
    waiting.textContent = queue.waiting;
    waiting.className = queue.waiting ? "waiting busy" : "waiting";
    offered.textContent = queue.offered;
    const figures = queue.window || {};
    asa.textContent = figures.asa_s === null || figures.asa_s === undefined ? "—" : duration(figures.asa_s);
    level.textContent = percent(figures.service_level);
    level.title = `answered within ${figures.threshold_s || 0} s`;
    abandon.textContent = percent(figures.abandon_rate);
    abandon.title = `${figures.abandoned || 0} abandoned, ${figures.answered || 0} answered`;
  });
  $("#no-queues").hidden = state.queues.size > 0;
}

function moveChoices(item) {
  const queues = [...state.queues.values()]
    .filter((queue) => queue.call_center === item.call_center && queue.queue !== item.queue)
    .map((queue) => [`queue:${queue.queue}`, queueName(queue.queue)]);
  const agents = [...state.agents.values()]
    .filter((agent) => agent.call_center === item.call_center && agent.agent !== item.agent)
    .map((agent) => [`agent:${agent.agent}`,
                     `${agentName(agent)} (${agent.status}, ${agent.used}/${agent.capacity})`]);
  const choices = [["", "Choose…"]];
  if (queues.length) choices.push({ Queues: queues });
  if (agents.length) choices.push({ Agents: agents });
  return choices;
}

function makeWaitingRow(id) {
  const row = document.createElement("tr");
  cells(row, 6);
  const select = element("select", null, "move-to");
  select.setAttribute("aria-label", "Move to");
  const move = element("button", "Move", "move");
  move.type = "button";
  move.addEventListener("click", () => moveItem(id, select.value));
  row.cells[5].append(select, move);
  return row;
}

function renderWaiting() {
  const ids = [...state.items.keys()];
  syncRows($("#waiting tbody"), ids, makeWaitingRow, (row, id) => {
    const item = state.items.get(id);
    const [queue, label, channel, itemState] = row.cells;
    queue.textContent = queueName(item.queue);
    label.textContent = item.label || item.id;
    label.title = item.id;
    channel.textContent = item.channel;
    const holder = item.agent ? state.agents.get(item.agent) : null;
    itemState.textContent = item.state === "offered"
      ? `offered to ${holder ? agentName(holder) : item.agent}` : "queued";
    row.cells[4].className = "since";
    setOptions($(".move-to", row), moveChoices(item));
  });
  $("#no-waiting").hidden = state.items.size > 0;
  const listed = new Map();
  for (const item of state.items.values()) listed.set(item.queue, (listed.get(item.queue) || 0) + 1);
  const full = [...listed].filter(([, count]) => count >= PER_QUEUE).map(([id]) => queueName(id));
  $("#waiting-more").textContent = full.length
    ? `Only the first ${PER_QUEUE} to be served are listed for ${full.join(", ")}.` : "";
}

function workText(work) {
  const what = work.wrap_up ? "after-call work" : work.state;
  return `${work.channel} · ${what}`;
}

function makeAgentRow(id) {
  const row = document.createElement("tr");
  cells(row, 5);
  const select = element("select", null, "status");
  select.setAttribute("aria-label", "Status");
  select.addEventListener("change", () => setStatus(id, select));
  row.cells[1].appendChild(select);
  return row;
}

function renderAgents() {
  const ids = [...state.agents.keys()].sort((a, b) =>
    agentName(state.agents.get(a)).localeCompare(agentName(state.agents.get(b))));
  syncRows($("#agents tbody"), ids, makeAgentRow, (row, id) => {
    const agent = state.agents.get(id);
    const [name, status, , work, capacity] = row.cells;
    name.textContent = agentName(agent);
    const select = $(".status", status);
    const names = state.statuses.includes(agent.status) ? state.statuses : [...state.statuses, agent.status];
    setOptions(select, names.map((n) => [n, n]));
    if (document.activeElement !== select) select.value = agent.status;
    row.cells[2].className = "since";
    work.replaceChildren(...agent.work.map((w) => element("span", workText(w), `work ${w.state}`)));
    if (!agent.work.length) work.appendChild(element("span", "—", "hint"));
    capacity.textContent = `${agent.used} of ${agent.capacity}`;
    capacity.className = agent.used >= agent.capacity && agent.capacity ? "capacity full" : "capacity";
  });
  $("#no-agents").hidden = state.agents.size > 0;
}

// The clocks on the page: longest wait, time in status, each item's wait.
function tick() {
  const t = browserNow();
  for (const row of $("#queues tbody").rows) {
    const queue = state.queues.get(row.dataset.id);
    if (!queue) continue;
    row.cells[3].textContent = queue.waiting ? duration(queue.longest_wait_s + t - queue.seen) : "—";
  }
  for (const row of $("#agents tbody").rows) {
    const agent = state.agents.get(row.dataset.id);
    if (agent) row.cells[2].textContent = duration(agent.time_in_status_s + t - agent.seen);
  }
  for (const row of $("#waiting tbody").rows) {
    const item = state.items.get(row.dataset.id);
    if (item) row.cells[4].textContent = duration(t + state.offset - (item.queued_at || item.created));
  }
}

// --- interventions ---------------------------------------------------------------------------------------

async function setStatus(agentId, select) {
  const agent = state.agents.get(agentId);
  const wanted = select.value;
  try {
    await api("PUT", `/api/v1/supervisor/agents/${encodeURIComponent(agentId)}/status`, { status: wanted });
    say(`${agent ? agentName(agent) : agentId} is now ${wanted}.`, true);
  } catch (error) {
    failed(error);
    if (agent) select.value = agent.status;
  }
  select.blur();
  await refresh().catch(failed);
}

async function moveItem(itemId, target) {
  const item = state.items.get(itemId);
  if (!target) {
    say("Choose a queue or an agent to move the item to.");
    return;
  }
  const [kind, id] = [target.slice(0, target.indexOf(":")), target.slice(target.indexOf(":") + 1)];
  try {
    await api("POST", `/api/v1/supervisor/work-items/${encodeURIComponent(itemId)}/move`, { [kind]: id });
    const where = kind === "queue" ? `queue ${queueName(id)}`
      : (state.agents.has(id) ? agentName(state.agents.get(id)) : id);
    say(`Moved ${item ? item.label || item.id : itemId} to ${where}.`, true);
  } catch (error) {
    failed(error);
  }
  await refresh().catch(failed);
}

// --- signing in and out ----------------------------------------------------------------------------------

// Back to the sign-in form: live events stop and nothing of the last user stays on the page.
function showLogin(message = "") {
  stopLive();
  state.queues.clear();
  state.agents.clear();
  state.items.clear();
  state.names.clear();
  state.referenceAt = 0;
  state.center = "";
  state.me = null;
  for (const body of document.querySelectorAll("#board tbody")) body.replaceChildren();
  showSignInForm($("#supervisor"), message);
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
  $("#supervisor").hidden = false;
  if (me.role !== "supervisor" && me.role !== "admin") {
    say("This page is for supervisors. Sign out and sign in with a supervisor's or an admin's credentials.");
    $("#board").hidden = true;
    return;
  }
  say("");
  $("#board").hidden = false;
  $("#center-pick").hidden = me.role !== "admin";
  $("#live").hidden = false;
  state.live = followLive("/supervisor", onLiveEvent, setLive, failed);
  await refresh().catch(failed);
}

wireSignIn(showSignedIn, stopLive);

setInterval(tick, 1000);
showSignedIn();
