-- wrk script for the cold-token mix of scripts/bench.sh: every request carries the next
-- token of a pre-minted file (one token per line), round robin, so a verifier's cache of
-- recent tokens does not help unless it holds the whole file.
--
--   wrk -t1 -c16 -d5s -s test-harness/bench/cold.lua http://127.0.0.1:10100/api/v1/dags \
--       -- target/bench/tokens-RS256.txt airflow.internal
--
-- Arguments after `--`: the token file, then the Host header. With -t1 the round robin is
-- exact; with more threads each thread walks the file on its own from the first token.

local tokens = {}
local count = 0
local next_index = 0
local host = nil

function init(args)
  local path = args[1]
  if path == nil then
    error("cold.lua: pass the token file after `--`")
  end
  host = args[2]
  for line in io.lines(path) do
    if #line > 0 then
      count = count + 1
      tokens[count] = "Bearer " .. line
    end
  end
  if count == 0 then
    error("cold.lua: no tokens in " .. path)
  end
end

function request()
  next_index = next_index % count + 1
  local headers = { ["Authorization"] = tokens[next_index] }
  if host ~= nil then
    headers["Host"] = host
  end
  return wrk.format("GET", nil, headers)
end
