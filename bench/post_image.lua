-- wrk script: POST the tutorial's multipart request (field "img") with the image in BENCH_IMAGE.
local file = assert(io.open(os.getenv("BENCH_IMAGE"), "rb"))
local image = file:read("*all")
file:close()
local boundary = "benchboundary7f3a"
wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
wrk.body = "--" .. boundary .. "\r\n"
  .. "Content-Disposition: form-data; name=\"img\"; filename=\"horse.jpg\"\r\n"
  .. "Content-Type: image/jpeg\r\n\r\n" .. image .. "\r\n--" .. boundary .. "--\r\n"
