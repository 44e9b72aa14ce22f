-- wrk script: POST a small triggerParams object to the invoke route.
wrk.method = "POST"
wrk.body = '{"repository":"trellis","private":true,"count":3}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TRELLIS_API_TOKEN")
