-- wrk script: every connection cycles through the site's kinds of page, e.g.
--   wrk -t2 -c32 -d20s -s paths.lua http://127.0.0.1:8080/
-- wrk's summary then says how many answers were not 2xx/3xx ("Non-2xx or 3xx responses")
-- and how many requests broke or timed out ("Socket errors"): both absent when all went well.
local paths = {"/style.css", "/articles/1", "/", "/api/articles", "/hello/ann"}
local i = 0
function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
