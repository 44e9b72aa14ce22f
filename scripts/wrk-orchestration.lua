-- wrk script: create (POST) or replace (PUT, when ORCHESTRATION_ID is set) an
-- orchestration whose compute step carries 10 encrypted params.
local params = {}
for i = 0, 9 do
  params[#params + 1] = string.format('"SECRET_%d":{"value":"sk_live_%d_%s","encrypt":true}', i, i, string.rep("x", 48))
end
local body = '{"name":"Provision Repo","steps":[' ..
  '{"id":"evaluate","type":"compute","functionId":"echo"},' ..
  '{"id":"approve","type":"approval"},' ..
  '{"id":"provision","type":"compute","functionId":"echo","encryptedParams":{' .. table.concat(params, ",") .. '}}]}'
local id = os.getenv("ORCHESTRATION_ID")
wrk.method = id and "PUT" or "POST"
if id then wrk.path = "/v1/orchestrations/" .. id end
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TRELLIS_API_TOKEN")
