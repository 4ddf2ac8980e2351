#!lua name=cti_routing_v2
-- Atomic routing steps for the Redis backend (cti_server/routing/redis_backend.py), loaded once as
-- a Redis function library (FUNCTION LOAD) and called as FCALL cti_routing_v2 0 <op> <prefix> <args...>.
-- The name carries the version of the calls and replies (v2: batches, agents given by id): server
-- processes of the previous version keep their own library (cti_routing) on the same Redis and data
-- during a rolling upgrade; FUNCTION DELETE cti_routing once none is left.
-- Each call runs atomically in Redis, so several server processes can route on one Redis without
-- offering an item twice. The rules mirror cti_server/routing/memory.py exactly (see
-- cti_server/routing/backend.py). Keys are built from the prefix (not declared in KEYS): this targets
-- a single Redis, not a cluster.

local P = ''
-- cjson.null, bound at call time (cjson is not loaded while the library loads). Fields without a
-- value are left out of stored items (nil, not NULL: less JSON to encode and decode); items stored
-- before, with nulls, read the same through isnull.
local NULL = nil
local SEQ_SCALE = 4294967296

local function isnull(v) return v == nil or v == NULL end
local function fmt(n) return string.format('%.17g', n) end
local function fail(kind, message) return redis.error_reply(kind .. ' ' .. message) end

local function jget(hash, id)
  local raw = redis.call('HGET', P .. hash, id)
  if not raw then return nil end
  return cjson.decode(raw)
end
-- The JSON last stored for each item or agent table in this call: replies reuse it (every change of
-- an item or agent is stored before the call replies, so it is what the reply would encode).
local encoded = {}
local function jput(hash, id, obj)
  local raw = cjson.encode(obj)
  encoded[obj] = raw
  redis.call('HSET', P .. hash, id, raw)
end

-- Agents changed in this step: stored once, when a reply needs their JSON or at the end of the step
-- (a churn step frees an agent and offers them the next item: one encode instead of two).
local dirty = {}
local function store_agent(agent)
  dirty[agent] = nil
  jput('agent', agent.id, agent)
end
local function store_dirty()
  for agent in pairs(dirty) do store_agent(agent) end
end
local function J(obj)
  if dirty[obj] then store_agent(obj) end
  return encoded[obj] or cjson.encode(obj)
end

-- Agents read in this call, by id (a step often frees an agent and then fills them).
local agents = {}
local function load_agent(id)
  local agent = agents[id]
  if agent == nil then
    agent = jget('agent', id) or false
    agents[id] = agent
  end
  return agent or nil
end

-- Presence statuses, queues and routing configurations change rarely: their decoded objects are kept
-- between calls, per prefix, for as long as the prefix's 'cver' key (rewritten by every change of
-- them, with a value never used before) holds the same value. Without the key nothing is kept.
local cache = {}
local kept, kept_prefixes = {}, 0
-- The kept entry of each prefix whose 'cver' this FCALL has read: nothing else runs during one FCALL,
-- so the later steps of a batch skip the GET (config_changed drops the prefix's entry).
local checked = {}
local function open_cache()
  if checked[P] then
    cache = checked[P]
    return
  end
  local version = redis.call('GET', P .. 'cver')
  if not version then
    cache = {status = {}, queue = {}, cfg = {}}
    return
  end
  local entry = kept[P]
  if not entry or entry.version ~= version then
    if not entry then
      kept_prefixes = kept_prefixes + 1
      if kept_prefixes > 64 then kept, kept_prefixes = {}, 1 end
    end
    entry = {version = version, status = {}, queue = {}, cfg = {}}
    kept[P] = entry
  end
  cache = entry
  checked[P] = entry
end
-- After a change of a status, queue or configuration: a new version, so no call reuses old objects.
local function config_changed()
  local t = redis.call('TIME')
  redis.call('SET', P .. 'cver', t[1] .. '.' .. t[2] .. '.' .. redis.call('INCR', P .. 'cver:n'))
  kept[P], checked[P] = nil, nil
  cache = {status = {}, queue = {}, cfg = {}}
end
local function cached(kind, id)
  local v = cache[kind][id]
  if v == nil then
    v = jget(kind, id) or false
    cache[kind][id] = v
  end
  return v or nil
end
-- 'retention' and 'keep' are written by connect() before it writes a new 'cver'.
local function setting(name, default)
  local v = cache[name]
  if v == nil then
    v = tonumber(redis.call('GET', P .. name) or default)
    cache[name] = v
  end
  return v
end
local function cfg_of(queue_id) return cached('cfg', cached('queue', queue_id).routing_config) end

local function contains(list, value)
  for _, v in ipairs(list) do if v == value then return true end end
  return false
end
local function remove_value(list, value)
  for i, v in ipairs(list) do if v == value then table.remove(list, i); return true end end
  return false
end

local function allows(status, channel)
  if not status then return false end
  for _, c in ipairs(status.channels) do if c == '*' or c == channel then return true end end
  return false
end

local function fits(agent, item, check_skills)
  if not allows(cached('status', agent.status), item.channel) then return false end
  if agent.used + item.size > agent.capacity then return false end
  local cap = agent.channel_caps[item.channel]
  if cap ~= nil and (agent.used_by_channel[item.channel] or 0) + item.size > cap then return false end
  if check_skills then
    for skill, level in pairs(item.skills) do
      if (agent.skills[skill] or -1) < level then return false end
    end
  end
  return true
end

-- The item would fit the agent once they have room (status, capacity, channel cap, skills).
local function could_take(agent, item)
  if not allows(cached('status', agent.status), item.channel) or item.size > agent.capacity then return false end
  local cap = agent.channel_caps[item.channel]
  if cap ~= nil and item.size > cap then return false end
  for skill, level in pairs(item.skills) do
    if (agent.skills[skill] or -1) < level then return false end
  end
  return true
end

-- The agent declined the item (or let its offer time out) last and their back-off still runs.
local function backing_off(item, agent_id, now)
  return item.backoff_agent == agent_id and not isnull(item.backoff_until) and now < item.backoff_until
end

-- Another member of the item's queue, busy or not, could take it (at most depth members looked at).
local function other_present(item, agent_id, depth)
  for _, aid in ipairs(redis.call('SRANDMEMBER', P .. 'p:' .. item.queue, depth)) do
    if aid ~= agent_id then
      local agent = load_agent(aid)
      if agent and could_take(agent, item) then return true end
    end
  end
  return false
end

local function score(item) return (99 - item.priority) * 1e13 + item.created * 1000 end

local function is_present(agent)
  local status = cached('status', agent.status)
  return status and #status.channels > 0
end

-- The agent in or out of their queues' present members (p:), after a change of status or queues.
local function mark_presence(agent)
  local present = is_present(agent)
  for _, qid in ipairs(agent.queues) do
    if present and cached('queue', qid) then
      redis.call('SADD', P .. 'p:' .. qid, agent.id)
    else
      redis.call('SREM', P .. 'p:' .. qid, agent.id)
    end
  end
end

-- Re-rank the agent in each of their queues' candidate sets after a change of load or status; with
-- ``presence`` (a change of status or queues, not only of load) mark_presence too.
local function refresh(agent, presence)
  if presence then mark_presence(agent) end
  local seq = nil
  local available = is_present(agent) and agent.used < agent.capacity
  for _, qid in ipairs(agent.queues) do
    local queue = cached('queue', qid)
    if available and queue then
      seq = seq or redis.call('INCR', P .. 'seq')
      local primary
      if cached('cfg', queue.routing_config).model == 'least_active' then
        primary = #agent.items
      else
        primary = agent.used - agent.capacity
      end
      redis.call('ZADD', P .. 'c:' .. qid, fmt(primary * SEQ_SCALE + seq), agent.id)
    else
      redis.call('ZREM', P .. 'c:' .. qid, agent.id)
    end
  end
end

local function add_timer(member, due) redis.call('ZADD', P .. 'timers', fmt(due), member) end
local function cancel_timer(member) redis.call('ZREM', P .. 'timers', member) end
local function offer_timer(item)
  return 't|' .. item.id .. '|' .. tostring(item.agent) .. '|' .. tostring(item.offer_no)
end

local function enter_waiting(item)
  redis.call('ZADD', P .. 'w:' .. item.queue, fmt(score(item)), item.id)
  redis.call('ZADD', P .. 'wc:' .. item.queue, fmt(item.created), item.id)
end
local function leave_waiting(item)
  redis.call('ZREM', P .. 'w:' .. item.queue, item.id)
  redis.call('ZREM', P .. 'wc:' .. item.queue, item.id)
end

local function enter_queue(item, queue, now)
  enter_waiting(item)
  if not isnull(queue.overflow_queue) and not isnull(queue.overflow_after_s) then
    add_timer('o|' .. item.id .. '|' .. queue.id, now + queue.overflow_after_s)
  end
  for skill, rule in pairs(queue.skill_relaxation) do
    if (item.skills[skill] or 0) > rule.level then
      add_timer('r|' .. item.id .. '|' .. queue.id .. '|' .. skill, now + rule.after_s)
    end
  end
end

local function drop_queue_timers(item)
  cancel_timer('o|' .. item.id .. '|' .. item.queue)
  local queue = cached('queue', item.queue)
  if queue then
    for skill, _ in pairs(queue.skill_relaxation) do
      cancel_timer('r|' .. item.id .. '|' .. item.queue .. '|' .. skill)
    end
  end
end

local function record(now, rec)
  rec.time = now
  redis.call('ZADD', P .. 'hist', fmt(now), cjson.encode(rec))
  local retention = setting('retention', 86400)
  redis.call('ZREMRANGEBYSCORE', P .. 'hist', '-inf', '(' .. fmt(now - retention))
end

local function save_item(item) jput('item', item.id, item) end
local function save_agent(agent)
  agents[agent.id] = agent
  encoded[agent] = nil
  dirty[agent] = true
end

local function finish(item)
  redis.call('HDEL', P .. 'item', item.id)
  jput('done', item.id, item)
  redis.call('ZADD', P .. 'done:order', fmt(item.closed_at), item.id)
  local keep = setting('keep', 10000)
  local extra = redis.call('ZCARD', P .. 'done:order') - keep
  if extra > 0 then
    local old = redis.call('ZRANGE', P .. 'done:order', 0, extra - 1)
    for _, id in ipairs(old) do
      redis.call('HDEL', P .. 'done', id)
      redis.call('HDEL', P .. 'data', id)
    end
    redis.call('ZREMRANGEBYRANK', P .. 'done:order', 0, extra - 1)
  end
end

-- Free the agent's capacity; returns the agent. With ``refill`` the caller offers them work next in
-- the same step and re-ranks them then (see refill), once instead of twice.
local function release(item, agent_id, refill)
  local agent = load_agent(agent_id)
  if not agent or not remove_value(agent.items, item.id) then return nil end
  agent.used = agent.used - item.size
  local left = (agent.used_by_channel[item.channel] or 0) - item.size
  if left > 0 then agent.used_by_channel[item.channel] = left else agent.used_by_channel[item.channel] = nil end
  if not refill then refresh(agent) end
  save_agent(agent)
  return agent
end

local function do_offer(item, agent, now, from_queue)
  if from_queue then leave_waiting(item) end
  item.state = 'offered'
  item.agent = agent.id
  item.offer_no = item.offer_no + 1
  table.insert(item.offers, {agent = agent.id, offered_at = now, outcome = '', reason = ''})
  table.insert(agent.items, item.id)
  agent.used = agent.used + item.size
  agent.used_by_channel[item.channel] = (agent.used_by_channel[item.channel] or 0) + item.size
  refresh(agent)
  save_agent(agent)
  redis.call('SADD', P .. 'o:' .. item.queue, item.id)
  local timeout = cfg_of(item.queue).push_timeout_s
  local deadline = nil
  if timeout > 0 then
    deadline = now + timeout
    add_timer(offer_timer(item), deadline)
  end
  save_item(item)
  return {item = item, agent = agent, deadline = deadline}
end

local function end_offer(item, now, outcome, reason)
  cancel_timer(offer_timer(item))
  redis.call('SREM', P .. 'o:' .. item.queue, item.id)
  local rec = item.offers[#item.offers]
  rec.outcome = outcome
  rec.reason = reason
  rec.ended_at = now
  release(item, item.agent)
  item.agent = nil
end

local function requeue(item, now, outcome, reason)
  if not contains(item.declined_by, item.agent) then table.insert(item.declined_by, item.agent) end
  local backoff = cfg_of(item.queue).decline_backoff_s or 0
  if backoff > 0 then
    item.backoff_agent, item.backoff_until = item.agent, now + backoff
    add_timer('b|' .. item.id, now + backoff)
  end
  end_offer(item, now, outcome, reason)
  item.state = 'queued'
  enter_waiting(item)
  save_item(item)
end

local function stop_hold(item, now)
  if not isnull(item.hold_since) then
    item.hold_s = item.hold_s + now - item.hold_since
    item.hold_since = nil
  end
end

local function close_item(item, now, reason, refill)
  cancel_timer('w|' .. item.id)
  stop_hold(item, now)
  if isnull(item.ended_at) then item.ended_at = now end
  item.state = 'closed'
  item.closed_at = now
  item.close_reason = reason
  local freed = release(item, item.agent, refill)
  finish(item)
  record(now, {kind = 'handled', item = item.id, queue = item.queue, channel = item.channel,
               call_center = item.call_center, agent = item.agent,
               talk_s = item.ended_at - item.accepted_at - item.hold_s, hold_s = item.hold_s,
               acw_s = now - item.ended_at})
  return freed
end

local function open_item(id)
  local item = jget('item', id)
  if item then return item end
  local done = jget('done', id)
  if done then return nil, fail('CONFLICT', 'work item ' .. id .. ' is ' .. done.state) end
  return nil, fail('NOTFOUND', 'no work item ' .. id)
end

-- Members of a sorted set in order, fetched a page at a time. Most scans stop at the first entry, so
-- the first page is that entry alone (Redis formats every score it returns, ~1 us each).
local PAGE = 16
local function scan(key, depth, with_scores)
  local start, buffer, i = 0, {}, 0
  local step = with_scores and 2 or 1
  return function()
    i = i + step
    if i > #buffer then
      if start >= depth then return nil end
      local stop = math.min(start == 0 and 1 or start + PAGE, depth) - 1
      if with_scores then
        buffer = redis.call('ZRANGE', key, start, stop, 'WITHSCORES')
      else
        buffer = redis.call('ZRANGE', key, start, stop)
      end
      start = stop + 1
      i = 1
      if #buffer == 0 then return nil end
    end
    if with_scores then return buffer[i], buffer[i + 1] end
    return buffer[i]
  end
end

local function best_item_for(agent, depth, now)
  local status = cached('status', agent.status)
  if not status or #status.channels == 0 then return nil end
  local tiers, priorities = {}, {}
  for _, qid in ipairs(agent.queues) do
    local queue = cached('queue', qid)
    if queue then
      local p = cached('cfg', queue.routing_config).routing_priority
      if not tiers[p] then tiers[p] = {}; table.insert(priorities, p) end
      table.insert(tiers[p], qid)
    end
  end
  table.sort(priorities)
  local fallback = nil
  for _, p in ipairs(priorities) do
    local best, best_score, best_id = nil, nil, nil
    for _, qid in ipairs(tiers[p]) do
      for item_id, raw_score in scan(P .. 'w:' .. qid, depth, true) do
        local item = jget('item', item_id)
        if item and fits(agent, item, true) then
          if contains(item.declined_by, agent.id) then
            if not fallback and not (backing_off(item, agent.id, now) and other_present(item, agent.id, depth)) then
              fallback = item
            end
          else
            local s = tonumber(raw_score)
            if best == nil or s < best_score or (s == best_score and item_id < best_id) then
              best, best_score, best_id = item, s, item_id
            end
            break
          end
        end
      end
    end
    if best then return best end
  end
  return fallback
end

local function fire_one(member, now)
  local parts = {}
  for part in string.gmatch(member, '[^|]+') do table.insert(parts, part) end
  local kind, item = parts[1], jget('item', parts[2])
  if not item then return nil end
  if kind == 't' then
    local agent_id = item.agent
    if item.state ~= 'offered' or agent_id ~= parts[3] or tostring(item.offer_no) ~= parts[4] then return nil end
    requeue(item, now, 'timeout', 'push timeout')
    return {kind = 'timed_out', item = item, agent = agent_id}
  end
  if kind == 'w' then
    if item.state ~= 'assigned' or isnull(item.ended_at) then return nil end
    local agent_id = item.agent
    close_item(item, now, 'wrap-up ended')
    return {kind = 'wrap_up_ended', item = item, agent = agent_id}
  end
  if kind == 'b' then
    if item.state ~= 'queued' then return nil end
    return {kind = 'backoff_ended', item = item}
  end
  local queue = cached('queue', parts[3])
  if item.queue ~= parts[3] or not queue or item.state == 'assigned' then return nil end
  if kind == 'r' then
    local skill = parts[4]
    local rule = queue.skill_relaxation[skill]
    if not rule or (item.skills[skill] or 0) <= rule.level then return nil end
    if rule.level == 0 then item.skills[skill] = nil else item.skills[skill] = rule.level end
    save_item(item)
    if item.state == 'queued' then return {kind = 'skills_relaxed', item = item} end
    return nil
  end
  if kind == 'o' and not isnull(queue.overflow_queue) then
    local target = cached('queue', queue.overflow_queue)
    if not target then return nil end
    if item.state == 'offered' then
      add_timer(member, now + math.max(cfg_of(item.queue).push_timeout_s, 1.0))
      return nil
    end
    leave_waiting(item)
    drop_queue_timers(item)
    local from_queue = item.queue
    item.queue = target.id
    item.queued_at = now
    enter_queue(item, target, now)
    save_item(item)
    return {kind = 'overflowed', item = item, from_queue = from_queue}
  end
  return nil
end

-- Offer a queued item to the best fitting agent (not one who declined it, unless no other fits).
local function route_item(item, now, depth)
  if not item or item.state ~= 'queued' then return nil end
  local fallback, held_back = nil, nil
  for aid in scan(P .. 'c:' .. item.queue, depth, false) do
    local agent = load_agent(aid)
    if agent and fits(agent, item, true) then
      if not contains(item.declined_by, aid) then return do_offer(item, agent, now, true) end
      if backing_off(item, aid, now) then
        held_back = agent
      elseif not fallback then
        fallback = agent
      end
    end
  end
  if fallback then return do_offer(item, fallback, now, true) end
  if held_back and not other_present(item, held_back.id, depth) then return do_offer(item, held_back, now, true) end
  return nil
end

-- Offer the agent (an id, or the agent's table when the caller has it) waiting work until nothing
-- more fits.
local function fill_agent(agent_or_id, now, depth)
  local agent = agent_or_id
  if type(agent_or_id) == 'string' then agent = load_agent(agent_or_id) end
  local offers = {}
  while agent and agent.used < agent.capacity do
    local item = best_item_for(agent, depth, now)
    if not item then break end
    table.insert(offers, do_offer(item, agent, now, true))
  end
  return offers
end

-- Offer an agent that release(..., true) freed what fits them now; every offer re-ranks them, and
-- without one they are re-ranked here (what release would have done).
local function refill(freed, agent_id, now, depth)
  local offers = fill_agent(freed or agent_id, now, depth)
  if freed and #offers == 0 then refresh(freed) end
  return offers
end

-- Replies, built from the stored JSON instead of encoding the same objects again. An agent already
-- written out in the same reply (``sent``) is given by id alone ("agent":"<id>"): the client reuses
-- the agent it has just read (a status change's reply carries the agent, then its offers).
local function offer_json(offer, sent)
  local deadline = 'null'
  if not isnull(offer.deadline) then deadline = fmt(offer.deadline) end
  local agent
  if sent and sent[offer.agent] then
    agent = cjson.encode(offer.agent.id)
  else
    agent = J(offer.agent)
    if sent then sent[offer.agent] = true end
  end
  return '{"item":' .. J(offer.item) .. ',"agent":' .. agent .. ',"deadline":' .. deadline .. '}'
end
local function offers_json(offers, sent)
  sent = sent or {}
  local parts = {}
  for i, offer in ipairs(offers) do parts[i] = offer_json(offer, sent) end
  return '[' .. table.concat(parts, ',') .. ']'
end
local function item_offers_json(item, offers)
  return '{"item":' .. J(item) .. ',"offers":' .. offers_json(offers) .. '}'
end

local function all_agents()
  store_dirty()
  local out = {}
  for _, raw in ipairs(redis.call('HVALS', P .. 'agent')) do table.insert(out, cjson.decode(raw)) end
  return out
end

local function rebuild_queue(qid)
  for _, agent in ipairs(all_agents()) do
    if contains(agent.queues, qid) then refresh(agent, true) end
  end
end

-- ------------------------------------------------------------------------------------------------
local function step(ARGV)
  local op = ARGV[1]
  if op == 'put_cfg' then
    local cfg = cjson.decode(ARGV[3])
    jput('cfg', cfg.id, cfg)
    config_changed()
    cache.cfg[cfg.id] = cfg
    for _, raw in ipairs(redis.call('HVALS', P .. 'queue')) do
      local queue = cjson.decode(raw)
      if queue.routing_config == cfg.id then rebuild_queue(queue.id) end
    end
    return 'OK'
  elseif op == 'del_cfg' then
    if not jget('cfg', ARGV[3]) then return fail('NOTFOUND', 'no routing configuration ' .. ARGV[3]) end
    for _, raw in ipairs(redis.call('HVALS', P .. 'queue')) do
      local queue = cjson.decode(raw)
      if queue.routing_config == ARGV[3] then
        return fail('CONFLICT', 'routing configuration ' .. ARGV[3] .. ' is used by queue ' .. queue.id)
      end
    end
    redis.call('HDEL', P .. 'cfg', ARGV[3])
    config_changed()
    return 'OK'
  elseif op == 'put_queue' then
    local queue = cjson.decode(ARGV[3])
    if not jget('cfg', queue.routing_config) then
      return fail('INPUT', 'routing_config no routing configuration ' .. queue.routing_config)
    end
    jput('queue', queue.id, queue)
    config_changed()
    cache.queue[queue.id] = queue
    rebuild_queue(queue.id)
    return 'OK'
  elseif op == 'del_queue' then
    local qid = ARGV[3]
    if not jget('queue', qid) then return fail('NOTFOUND', 'no queue ' .. qid) end
    if redis.call('ZCARD', P .. 'w:' .. qid) > 0 or redis.call('SCARD', P .. 'o:' .. qid) > 0 then
      return fail('CONFLICT', 'queue ' .. qid .. ' still holds work items')
    end
    for _, raw in ipairs(redis.call('HVALS', P .. 'item')) do
      if cjson.decode(raw).queue == qid then return fail('CONFLICT', 'queue ' .. qid .. ' still holds work items') end
    end
    redis.call('HDEL', P .. 'queue', qid)
    config_changed()
    redis.call('DEL', P .. 'c:' .. qid, P .. 'p:' .. qid, P .. 'w:' .. qid, P .. 'wc:' .. qid, P .. 'o:' .. qid)
    return 'OK'
  elseif op == 'put_status' then
    local status = cjson.decode(ARGV[3])
    jput('status', status.name, status)
    config_changed()
    cache.status[status.name] = status
    for _, agent in ipairs(all_agents()) do
      if agent.status == status.name then refresh(agent, true) end
    end
    return 'OK'
  elseif op == 'del_status' then
    if not jget('status', ARGV[3]) then return fail('NOTFOUND', 'no presence status ' .. ARGV[3]) end
    for _, agent in ipairs(all_agents()) do
      if agent.status == ARGV[3] then return fail('CONFLICT', 'agents are in presence status ' .. ARGV[3]) end
    end
    redis.call('HDEL', P .. 'status', ARGV[3])
    config_changed()
    return 'OK'
  elseif op == 'put_agent' then
    local agent = cjson.decode(ARGV[3])
    local now = tonumber(ARGV[4])
    local old = jget('agent', agent.id)
    if old then
      agent.status, agent.status_since = old.status, old.status_since
      agent.used, agent.used_by_channel, agent.items = old.used, old.used_by_channel, old.items
      for _, qid in ipairs(old.queues) do
        redis.call('ZREM', P .. 'c:' .. qid, agent.id)
        redis.call('SREM', P .. 'p:' .. qid, agent.id)
      end
    else
      if not cached('status', agent.status) then return fail('INPUT', 'status no presence status ' .. agent.status) end
      agent.status_since = now
      agent.used, agent.used_by_channel, agent.items = 0, {}, {}
    end
    refresh(agent, true)
    save_agent(agent)
    return J(agent)
  elseif op == 'del_agent' then
    local agent = load_agent(ARGV[3])
    if not agent then return fail('NOTFOUND', 'no agent ' .. ARGV[3]) end
    if #agent.items > 0 then return fail('CONFLICT', 'agent ' .. agent.id .. ' still holds work items') end
    for _, qid in ipairs(agent.queues) do
      redis.call('ZREM', P .. 'c:' .. qid, agent.id)
      redis.call('SREM', P .. 'p:' .. qid, agent.id)
    end
    redis.call('HDEL', P .. 'agent', agent.id)
    return 'OK'
  elseif op == 'set_status' then
    local agent = load_agent(ARGV[3])
    local now = tonumber(ARGV[5])
    if not agent then return fail('NOTFOUND', 'no agent ' .. ARGV[3]) end
    if not cached('status', ARGV[4]) then return fail('INPUT', 'status no presence status ' .. ARGV[4]) end
    local changed = agent.status ~= ARGV[4]
    if changed then
      agent.status = ARGV[4]
      agent.status_since = now
    end
    local offers = fill_agent(agent, now, tonumber(ARGV[6]))
    if changed and #offers == 0 then
      refresh(agent, true)
      save_agent(agent)
    elseif changed then  -- an offer has re-ranked and saved the agent
      mark_presence(agent)
    end
    return '{"agent":' .. J(agent) .. ',"offers":' .. offers_json(offers, {[agent] = true}) .. '}'
  elseif op == 'add_item' then
    local item = cjson.decode(ARGV[3])
    local now = tonumber(ARGV[5])
    if redis.call('HEXISTS', P .. 'item', item.id) == 1 or redis.call('HEXISTS', P .. 'done', item.id) == 1 then
      return fail('CONFLICT', 'work item ' .. item.id .. ' exists')
    end
    local queue = cached('queue', item.queue)
    if not queue then return fail('INPUT', 'queue no queue ' .. item.queue) end
    item.state = 'queued'
    item.queued_at = now
    redis.call('HSET', P .. 'data', item.id, ARGV[4])
    enter_queue(item, queue, now)
    save_item(item)
    local offer = route_item(item, now, tonumber(ARGV[6]))
    if offer then return '{"item":' .. J(item) .. ',"offer":' .. offer_json(offer) .. '}' end
    return '{"item":' .. J(item) .. ',"offer":null}'
  elseif op == 'offer_item' then
    local offer = route_item(jget('item', ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
    if not offer then return '' end
    return offer_json(offer)
  elseif op == 'offer_agent' then
    local offers = fill_agent(ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]))
    return offers_json(offers)
  elseif op == 'offer_to' then
    local item, err = open_item(ARGV[3])
    if not item then return err end
    local agent = load_agent(ARGV[4])
    local now = tonumber(ARGV[5])
    if not agent then return fail('NOTFOUND', 'no agent ' .. ARGV[4]) end
    if item.state == 'assigned' then return fail('CONFLICT', 'work item ' .. item.id .. ' is already assigned') end
    if item.agent == agent.id then
      return fail('CONFLICT', 'work item ' .. item.id .. ' is already offered to ' .. agent.id)
    end
    if not fits(agent, item, false) then
      return fail('CONFLICT', 'agent ' .. agent.id .. ' (' .. agent.status .. ') has no room for work item ' .. item.id)
    end
    if item.state == 'offered' then
      end_offer(item, now, 'moved', 'supervisor')
      agent = load_agent(ARGV[4])
    else
      leave_waiting(item)
    end
    return offer_json(do_offer(item, agent, now, false))
  elseif op == 'accept' then
    local item, err = open_item(ARGV[3])
    if not item then return err end
    local now = tonumber(ARGV[5])
    if item.state ~= 'offered' or item.agent ~= ARGV[4] then
      return fail('CONFLICT', 'work item ' .. item.id .. ' is not offered to ' .. ARGV[4])
    end
    cancel_timer(offer_timer(item))
    redis.call('SREM', P .. 'o:' .. item.queue, item.id)
    item.state = 'assigned'
    item.accepted_at = now
    local rec = item.offers[#item.offers]
    rec.outcome = 'accepted'
    rec.ended_at = now
    save_item(item)
    record(now, {kind = 'answered', item = item.id, queue = item.queue, channel = item.channel,
                 call_center = item.call_center, agent = item.agent, wait_s = now - item.created})
    return J(item)
  elseif op == 'decline' then
    local item, err = open_item(ARGV[3])
    if not item then return err end
    if item.state ~= 'offered' or item.agent ~= ARGV[4] then
      return fail('CONFLICT', 'work item ' .. item.id .. ' is not offered to ' .. ARGV[4])
    end
    local now, depth = tonumber(ARGV[5]), tonumber(ARGV[7])
    requeue(item, now, 'declined', ARGV[6])
    local offers = {}
    local again = route_item(item, now, depth)
    if again then table.insert(offers, again) end
    for _, offer in ipairs(fill_agent(ARGV[4], now, depth)) do table.insert(offers, offer) end
    return item_offers_json(item, offers)
  elseif op == 'hold' then
    local item, err = open_item(ARGV[3])
    if not item then return err end
    local now = tonumber(ARGV[5])
    if item.state ~= 'assigned' or not isnull(item.ended_at) then
      return fail('CONFLICT', 'work item ' .. item.id .. ' is not in conversation')
    end
    if ARGV[4] == '1' and isnull(item.hold_since) then
      item.hold_since = now
    elseif ARGV[4] == '0' then
      stop_hold(item, now)
    end
    save_item(item)
    return cjson.encode(item)
  elseif op == 'end_conversation' then
    local item, err = open_item(ARGV[3])
    if not item then return err end
    local now = tonumber(ARGV[4])
    if item.state ~= 'assigned' or not isnull(item.ended_at) then
      return fail('CONFLICT', 'work item ' .. item.id .. ' is not in conversation')
    end
    stop_hold(item, now)
    item.ended_at = now
    local wrap_up = cfg_of(item.queue).after_call_work_s
    if wrap_up > 0 then
      add_timer('w|' .. item.id, now + wrap_up)
      save_item(item)
      return item_offers_json(item, {})
    end
    local freed = close_item(item, now, 'completed', true)
    return item_offers_json(item, refill(freed, item.agent, now, tonumber(ARGV[5])))
  elseif op == 'close' then
    local item, err = open_item(ARGV[3])
    if not item then return err end
    if item.state ~= 'assigned' then
      return fail('CONFLICT', 'work item ' .. item.id .. ' is ' .. item.state .. '; withdraw it instead')
    end
    local now = tonumber(ARGV[4])
    local freed = close_item(item, now, ARGV[5], true)
    return item_offers_json(item, refill(freed, item.agent, now, tonumber(ARGV[6])))
  elseif op == 'withdraw' then
    local item, err = open_item(ARGV[3])
    if not item then return err end
    local now = tonumber(ARGV[4])
    local agent_id = item.agent
    if item.state == 'assigned' then
      return fail('CONFLICT', 'work item ' .. item.id .. ' is assigned; close it instead')
    end
    if item.state == 'offered' then end_offer(item, now, 'withdrawn', ARGV[5]) else leave_waiting(item) end
    drop_queue_timers(item)
    item.state = 'withdrawn'
    item.closed_at = now
    item.close_reason = ARGV[5]
    finish(item)
    record(now, {kind = 'abandoned', item = item.id, queue = item.queue, channel = item.channel,
                 call_center = item.call_center, wait_s = now - item.created})
    local offers = {}
    if not isnull(agent_id) then offers = fill_agent(agent_id, now, tonumber(ARGV[6])) end
    return cjson.encode({item = item, agent = agent_id, offers = offers})
  elseif op == 'move' then
    local item, err = open_item(ARGV[3])
    if not item then return err end
    local queue = cached('queue', ARGV[4])
    local now = tonumber(ARGV[5])
    if not queue then return fail('INPUT', 'queue no queue ' .. ARGV[4]) end
    if item.state == 'assigned' then return fail('CONFLICT', 'work item ' .. item.id .. ' is already assigned') end
    local agent_id = item.agent
    if item.state == 'offered' then end_offer(item, now, 'moved', 'to queue ' .. ARGV[4]) else leave_waiting(item) end
    drop_queue_timers(item)
    item.state = 'queued'
    item.queue = queue.id
    item.queued_at = now
    enter_queue(item, queue, now)
    save_item(item)
    return cjson.encode({item = item, agent = agent_id})
  elseif op == 'fire' then
    local now, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
    local out = {}
    local due = redis.call('ZRANGEBYSCORE', P .. 'timers', '-inf', ARGV[3], 'LIMIT', 0, limit)
    for _, member in ipairs(due) do
      redis.call('ZREM', P .. 'timers', member)
      local result = fire_one(member, now)
      if result then table.insert(out, result) end
    end
    if #out == 0 then return '[]' end
    return cjson.encode(out)
  end
  return fail('INPUT', 'op unknown routing operation ' .. tostring(op))
end

-- One step: its reply, or nil and the error it raised.
local function run_step(ARGV)
  P = ARGV[2]
  NULL = cjson.null
  encoded, agents, dirty = {}, {}, {}
  open_cache()
  local reply = step(ARGV)
  store_dirty()
  return reply
end
local function guarded(ARGV)
  local ok, reply = pcall(run_step, ARGV)
  if ok then return reply end
  return nil, reply
end

-- FCALL cti_routing_v2 0 <op> <prefix> <args...>: one step.
-- FCALL cti_routing_v2 0 batch <n1> <op> <prefix> <args...> <n2> ...: several steps (n = the step's
-- argument count), each atomic on its own, run in order; the reply is the array of their replies,
-- an error reply in place of a step that failed.
local function dispatch(_keys, ARGV)
  checked = {}
  if ARGV[1] ~= 'batch' then
    local reply, err = guarded(ARGV)
    if err ~= nil then error(err, 0) end
    return reply
  end
  local replies, pos, last = {}, 2, #ARGV
  while pos <= last do
    local count = tonumber(ARGV[pos])
    local args = {}
    for i = 1, count do args[i] = ARGV[pos + i] end
    pos = pos + count + 1
    local reply, err = guarded(args)
    if err ~= nil then
      if type(err) == 'table' and err.err then reply = err else reply = redis.error_reply(tostring(err)) end
    end
    replies[#replies + 1] = reply
  end
  return replies
end

redis.register_function('cti_routing_v2', dispatch)
