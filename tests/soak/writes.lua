-- wrk script for make soak: writes alongside the search load.
-- usage: wrk -t1 -s writes.lua URL -- [WINDOW] [DELETE_EVERY]
--
-- PUT /documents/soak-N with a small unique JSON document (N counts up, so
-- every PUT creates), and DELETE /documents/soak-K only for an id whose PUT
-- has been answered 201 and that has not been deleted yet, so a DELETE can
-- never be answered 404. The confirmed id is read from the answer's body
-- ({"id": ..., "result": "created"}), because wrk does not say which request
-- a response belongs to. Deletes: one request in DELETE_EVERY (default 10)
-- takes a random live id; once WINDOW (default 20000) ids are live, every
-- other request deletes the oldest, so the live soak documents stay about
-- WINDOW and the index does not grow with the length of the run.
-- Needs -t1 (the counts are per thread; done() sums them anyway).

local window, delete_every = 20000, 10
local next_id = 0
local live = {}          -- ids answered 201, not yet sent a DELETE
local live_head, live_tail = 1, 0   -- live[live_head..live_tail]; holes are nil
local live_count = 0
local nreq = 0
puts, deletes, created, updated, deleted, other_2xx, non2xx = 0, 0, 0, 0, 0, 0, 0
statuses = ""            -- non-2xx statuses seen, "code:count" pairs
local status_counts = {}

local words = { "春风", "明月", "江南", "长安", "秋水", "孤帆", "落花", "归雁",
                "青山", "白云", "烟雨", "故人", "夜雨", "寒山", "渔舟", "边塞" }

local threads = {}
function setup(thread) threads[#threads + 1] = thread end

function init(args)
    window = tonumber(args[1]) or window
    delete_every = tonumber(args[2]) or delete_every
    math.randomseed(os.time())
end

local function take_oldest()
    while live_head <= live_tail do
        local id = live[live_head]
        live[live_head] = nil
        live_head = live_head + 1
        if id then live_count = live_count - 1; return id end
    end
end

local function take_random()
    if live_count == 0 then return nil end
    for _ = 1, 8 do
        local i = math.random(live_head, live_tail)
        local id = live[i]
        if id then live[i] = nil; live_count = live_count - 1; return id end
    end
    return take_oldest()
end

function request()
    nreq = nreq + 1
    local id
    if live_count >= window and nreq % 2 == 0 then
        id = take_oldest()
    elseif nreq % delete_every == 0 then
        id = take_random()
    end
    if id then
        deletes = deletes + 1
        return wrk.format("DELETE", "/documents/" .. id)
    end
    next_id = next_id + 1
    local n = next_id
    local a = words[n % 16 + 1]
    local b = words[math.floor(n / 16) % 16 + 1]
    local c = words[math.floor(n / 256) % 16 + 1]
    local body = string.format(
        '{"title": "soak %d %s%s", "body": "%s %s %s 第%d篇 soakword%d", ' ..
        '"source": "soak", "tags": ["soak", "t%d"], "date": "2024-%02d-%02d"}',
        n, a, b, c, a, b, n, n, n % 7, n % 12 + 1, n % 28 + 1)
    puts = puts + 1
    return wrk.format("PUT", "/documents/soak-" .. n,
                      { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
    if status >= 200 and status < 300 then
        local result = body:match('"result"%s*:%s*"(%a+)"')
        if result == "created" then
            created = created + 1
            local id = body:match('"id"%s*:%s*"([^"]*)"')
            if id then
                live_tail = live_tail + 1
                live[live_tail] = id
                live_count = live_count + 1
            end
        elseif result == "updated" then updated = updated + 1
        elseif result == "deleted" then deleted = deleted + 1
        else other_2xx = other_2xx + 1 end
    else
        non2xx = non2xx + 1
        status_counts[status] = (status_counts[status] or 0) + 1
        local parts = {}
        for k, v in pairs(status_counts) do parts[#parts + 1] = k .. ":" .. v end
        statuses = table.concat(parts, ",")
    end
end

function done(summary, latency, requests)
    local t = { puts = 0, deletes = 0, created = 0, updated = 0, deleted = 0,
                other_2xx = 0, non2xx = 0 }
    local st = {}
    for _, thread in ipairs(threads) do
        for k in pairs(t) do t[k] = t[k] + (thread:get(k) or 0) end
        local s = thread:get("statuses")
        if s and #s > 0 then st[#st + 1] = s end
    end
    io.write(string.format(
        "writes: puts_sent %d deletes_sent %d created %d updated %d deleted %d " ..
        "other_2xx %d non2xx %d statuses [%s]\n",
        t.puts, t.deletes, t.created, t.updated, t.deleted, t.other_2xx, t.non2xx,
        table.concat(st, ";")))
end
