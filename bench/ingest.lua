-- Replays pre-signed Stripe deliveries (one per line: "<Stripe-Signature>|<body>"), each thread
-- taking its own share so that every request carries a unique event id.
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  reqs, idx = {}, 0
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == (tid - 1) then
      local sep = line:find("|", 1, true)
      reqs[#reqs + 1] = wrk.format("POST", nil, {
        ["Stripe-Signature"] = line:sub(1, sep - 1),
        ["Content-Type"] = "application/json",
      }, line:sub(sep + 1))
    end
    i = i + 1
  end
end

function request()
  idx = idx + 1
  if idx > #reqs then idx = 1 end
  return reqs[idx]
end
