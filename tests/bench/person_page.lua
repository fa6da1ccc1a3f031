-- wrk script for tests/bench/bench_person_page.py (issue 19): each wrk thread drives one
-- connection (wrk -t N -c N) as its own signed-in practitioner, cycling over that
-- practitioner's requests, and checks every answer: a status other than 200 or a body
-- without the request's marker (another child's page, the sign-in page, an error page) is
-- counted, and the run is reported as failed.
--
--   wrk -t N -c N -d 20s --latency -s person_page.lua http://127.0.0.1:PORT -- DATA_FILE
--
-- DATA_FILE, written by the Python, has one tab-separated line per item:
--   H <tab> connection <tab> header name <tab> header value
--   R <tab> connection <tab> method <tab> path <tab> body ("" for none) <tab> markers
-- where connection counts from 0 and markers are alternatives separated by \31 (unit
-- separator): the body must contain at least one of them, as plain text.

local threads = {}
local counter = 0

function setup(thread)
   thread:set("connection", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local function split(text, separator)
   local parts = {}
   local start = 1
   while true do
      local at = string.find(text, separator, start, true)
      if not at then
         table.insert(parts, string.sub(text, start))
         return parts
      end
      table.insert(parts, string.sub(text, start, at - 1))
      start = at + #separator
   end
end

local requests = {}
local markers = {}
local next_index = 1
local pending = nil

function init(args)
   local mine = tostring(connection)
   local headers = {}
   local items = {}
   local file = assert(io.open(args[1], "r"))
   for line in file:lines() do
      local fields = split(line, "\t")
      if fields[2] == mine then
         if fields[1] == "H" then
            headers[fields[3]] = fields[4]
         elseif fields[1] == "R" then
            table.insert(items, fields)
         end
      end
   end
   file:close()
   assert(#items > 0, "no requests for connection " .. mine)
   -- Every request is built once here, so the measured loop only hands out strings.
   for i, fields in ipairs(items) do
      local body = fields[5] ~= "" and fields[5] or nil
      local own = {}
      for name, value in pairs(headers) do
         own[name] = value
      end
      if body then
         own["Content-Type"] = "application/json"
      end
      requests[i] = wrk.format(fields[3], fields[4], own, body)
      markers[i] = split(fields[6], "\31")
   end
   sent = 0
   answered = 0
   non_200 = 0
   wrong_body = 0
   first_failure = ""
end

function request()
   pending = next_index
   next_index = next_index % #requests + 1
   sent = sent + 1
   return requests[pending]
end

local function describe(status, body, index)
   local title = string.match(body or "", "<title>(.-)</title>") or string.sub(body or "", 1, 120)
   return string.format("status %d for request %d (%s): %s", status, index,
      string.match(requests[index], "^(%S+ %S+)"), title)
end

function response(status, headers, body)
   answered = answered + 1
   local index = pending
   if index == nil then
      return
   end
   if status ~= 200 then
      non_200 = non_200 + 1
      if first_failure == "" then
         first_failure = describe(status, body, index)
      end
      return
   end
   for _, marker in ipairs(markers[index]) do
      if string.find(body, marker, 1, true) then
         return
      end
   end
   wrong_body = wrong_body + 1
   if first_failure == "" then
      first_failure = "wrong body: " .. describe(status, body, index)
   end
end

function done(summary, latency, requests)
   local totals = { sent = 0, answered = 0, non_200 = 0, wrong_body = 0 }
   local failures = {}
   for _, thread in ipairs(threads) do
      for name, _ in pairs(totals) do
         totals[name] = totals[name] + (thread:get(name) or 0)
      end
      local failure = thread:get("first_failure")
      if failure and failure ~= "" then
         table.insert(failures, failure)
      end
   end
   local errors = summary.errors
   -- One line the Python reads (times in microseconds).
   io.write(string.format(
      "PWBENCH requests=%d duration_us=%d bytes=%d answered=%d non_200=%d wrong_body=%d "
         .. "connect_errors=%d read_errors=%d write_errors=%d timeouts=%d "
         .. "p50_us=%d p95_us=%d p99_us=%d max_us=%d mean_us=%.1f\n",
      summary.requests, summary.duration, summary.bytes, totals.answered, totals.non_200,
      totals.wrong_body, errors.connect, errors.read, errors.write, errors.timeout,
      latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
      latency.mean))
   for _, failure in ipairs(failures) do
      io.write("PWFAILURE " .. string.gsub(failure, "%s+", " ") .. "\n")
   end
end
