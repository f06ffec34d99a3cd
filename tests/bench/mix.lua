-- wrk script: GET /search for each line of the query mix in turn.
-- usage: wrk -s mix.lua ... URL -- MIX_FILE [EXTRA_PARAMS]
local queries = {}
local counter = 0

local function urlencode(s)
    return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function init(args)
    local extra = args[2] or ""
    for line in io.lines(args[1]) do
        if #line > 0 then
            queries[#queries + 1] = "/search?q=" .. urlencode(line) .. extra
        end
    end
end

function request()
    counter = counter % #queries + 1
    return wrk.format("GET", queries[counter])
end
