-- wrk script: POST the bytes of the file BENCH_BODY with the Content-Type BENCH_CONTENT_TYPE.
local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*all")
file:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
