-- wrk script: every request is a new, unique EPN.bz postback (GET with query parameters, as ePN sends it).
--
-- Usage: BENCH_ACK_FILE=<file> wrk ... -s postback.lua <url> -- <token> <run tag> <ack id key>
--   the uniq_id of each request is "<run tag>-<thread>-<n>", so no two requests of any run repeat;
--   <ack id key> is the JSON key holding the stored row's id in a 2xx answer ("order_id" or "id");
--   every acknowledged id is written to BENCH_ACK_FILE, one a line, so rows stored can be checked against
--   rows acknowledged id by id, and the totals are written to "<BENCH_ACK_FILE>.summary".

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("thread_number", counter)
   table.insert(threads, thread)
end

local token, tag, ack_key, path_prefix, ack_pattern
local sequence = 0
acks = {}
statuses = {}

function init(args)
   token, tag, ack_key = args[1], args[2], args[3]
   path_prefix = "/webhook/" .. token .. "?"
   ack_pattern = '"' .. ack_key .. '"%s*:%s*(%d+)'
   wrk.headers["X-Forwarded-Proto"] = "https"
   wrk.headers["User-Agent"] = "epn-postback/1.0"
end

function request()
   sequence = sequence + 1
   local id = tag .. "-" .. thread_number .. "-" .. sequence
   local query = "click_id=user" .. (sequence % 5000)
      .. "&order_number=ORD" .. id
      .. "&uniq_id=" .. id
      .. "&order_status=waiting"
      .. "&offer_name=AliExpress%20WW&offer_type=ali&offer_id=1&type_id=1"
      .. "&sub=s1&sub2=s2&sub3=&sub4=&sub5="
      .. "&revenue=" .. (100 + sequence % 9000) .. ".50&commission_fee=" .. (5 + sequence % 400) .. ".25&currency=RUB"
      .. "&ip=203.0.113." .. (sequence % 250 + 1) .. "&ipv6="
      .. "&user_agent=Mozilla%2F5.0%20(Linux%3B%20Android%2014)"
      .. "&click_time=2026-11-27%2010%3A00%3A00&time_of_order=2026-11-27%2010%3A05%3A00"
   return wrk.format("GET", path_prefix .. query)
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if status >= 200 and status < 300 then
      local id = string.match(body, ack_pattern)
      if id then
         table.insert(acks, id)
      end
   end
end

function done(summary, latency, requests)
   local ack_file = os.getenv("BENCH_ACK_FILE")
   local out = assert(io.open(ack_file, "w"))
   local counts = {}
   for _, thread in ipairs(threads) do
      for _, id in ipairs(thread:get("acks")) do
         out:write(id, "\n")
      end
      for status, n in pairs(thread:get("statuses")) do
         counts[status] = (counts[status] or 0) + n
      end
   end
   out:close()
   local s = assert(io.open(ack_file .. ".summary", "w"))
   s:write(string.format("requests %d\n", summary.requests))
   s:write(string.format("duration_us %d\n", summary.duration))
   s:write(string.format("errors_connect %d\nerrors_read %d\nerrors_write %d\nerrors_status %d\nerrors_timeout %d\n",
      summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
      summary.errors.timeout))
   for _, p in ipairs({50, 90, 99, 99.9}) do
      s:write(string.format("latency_p%s_us %d\n", p, latency:percentile(p)))
   end
   s:write(string.format("latency_max_us %d\nlatency_mean_us %f\n", latency.max, latency.mean))
   for status, n in pairs(counts) do
      s:write(string.format("status_%d %d\n", status, n))
   end
   s:close()
end
