-- wrk script: every request is a new, unique EPN.bz postback (GET with query parameters, as ePN sends it).
--
-- Usage: BENCH_SUMMARY_FILE=<file> wrk ... -s postback.lua <url> -- <token> <run tag>
--   the uniq_id of each request is "<run tag>-<thread>-<n>", n counting from 1 in each wrk thread, so the
--   ids a run sent are known without asking the receiver: bench/run.py counts the rows carrying them.
--   The totals (postbacks sent, 2xx answers, latencies, errors) are written to BENCH_SUMMARY_FILE.

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("thread_number", counter)
   table.insert(threads, thread)
end

local token, tag, path_prefix
-- Read back by done() through thread:get, so global to the thread's state.
sequence = 0
statuses = {}

function init(args)
   token, tag = args[1], args[2]
   path_prefix = "/webhook/" .. token .. "?"
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
end

function done(summary, latency, requests)
   -- wrk calls request() once on its first thread before any connection opens, to check the script;
   -- that postback is never sent.
   local sent, acknowledged, counts = -1, 0, {}
   for _, thread in ipairs(threads) do
      sent = sent + thread:get("sequence")
      for status, n in pairs(thread:get("statuses")) do
         counts[status] = (counts[status] or 0) + n
         if status >= 200 and status < 300 then
            acknowledged = acknowledged + n
         end
      end
   end
   local s = assert(io.open(os.getenv("BENCH_SUMMARY_FILE"), "w"))
   s:write(string.format("sent %d\nacknowledged %d\n", sent, acknowledged))
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
