#!/usr/bin/env bash
# End-to-end: the real function binary behind cargo-lambda's Lambda emulator, driven with curl and
# `cargo lambda invoke`. Starts both, checks every answer, measures warm latency, stops what it started.
#
#   tests/e2e.sh [BINARY]     (default target/release/object-detector; cargo-lambda must be on PATH)
#
# Environment: E2E_PORT (default 9417), E2E_WARM (warm requests to time, default 20).
# At the end, tools/check_emf.py holds the function's stdout to one valid EMF metric record per request.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/object-detector}
port=${E2E_PORT:-9417}
warm=${E2E_WARM:-20}
url="http://127.0.0.1:$port/lambda-url/object-detector"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
command -v cargo-lambda >/dev/null || { echo "e2e: cargo-lambda is not on PATH (pip install cargo-lambda)"; exit 1; }
[ -x "$bin" ] || { echo "e2e: $bin not built"; exit 1; }

cargo lambda watch --only-lambda-apis -P "$port" >"$work/watch.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

start_ns=$(date +%s%N)
AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt/object-detector" AWS_LAMBDA_FUNCTION_NAME=object-detector \
  AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1024 CORS_ALLOW_ORIGIN=https://app.example.com \
  "$bin" >"$work/fn.out" 2>"$work/fn.log" &
pids+=($!)

passed=0
failed=0
check() { # name expected-status expected-code-or-label curl-args...
  local name=$1 want_status=$2 want=$3
  shift 3
  local status
  status=$(curl -s -o "$work/body" -w '%{http_code}' "$@" || echo 000)
  if python3 - "$work/body" "$status" "$want_status" "$want" <<'PY'
import json, sys
body, status, want_status, want = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
text = open(body, "rb").read()
try:
    v = json.loads(text) if text else None
except ValueError:
    sys.exit(f"not JSON: {text[:200]!r}")
if status != want_status:
    sys.exit(f"status {status}, want {want_status}: {text[:300]!r}")
if want == "-":
    sys.exit(0)
if "error" in (v or {}):
    got = v["error"]["code"]
elif "detections" in (v or {}):
    got = v["detections"][0]["label"] if v["detections"] else "(none)"
else:
    got = next(iter(v)) if isinstance(v, dict) and v else str(v)
if got != want:
    sys.exit(f"got {got}, want {want}: {text[:300]!r}")
PY
  then passed=$((passed + 1)); echo "ok   $name"
  else failed=$((failed + 1)); echo "FAIL $name"
  fi
}

jpeg=tests/images/chelsea.jpg
# The first request also waits for the function to finish init.
check "raw JPEG" 200 cat --max-time 60 --data-binary @"$jpeg" -H 'Content-Type: image/jpeg' "$url/detect"
ready_ns=$(date +%s%N)
check "raw PNG" 200 person --data-binary @tests/images/astronaut.png -H 'Content-Type: image/png' "$url/detect"
check "octet-stream" 200 cat --data-binary @"$jpeg" -H 'Content-Type: application/octet-stream' "$url/detect"
python3 -c "import base64,json,sys; print(json.dumps({'image': 'data:image/jpeg;base64,' + base64.b64encode(open(sys.argv[1],'rb').read()).decode(), 'classes': ['couch'], 'score_threshold': 0.25}))" "$jpeg" >"$work/req.json"
check "JSON base64 + classes + threshold" 200 couch --data-binary @"$work/req.json" -H 'Content-Type: application/json' "$url/detect"
check "multipart form" 200 cat -F "image=@$jpeg" -F score_threshold=0.5 "$url/detect"
# No -H: curl labels the PNG as a form; the bytes decide.
check "query options, curl's default content type" 200 person --data-binary @tests/images/camera.png "$url/detect?classes=person&max_detections=1"
check "bare function URL path" 200 cat --data-binary @"$jpeg" -H 'Content-Type: image/jpeg' "$url/"
check "GET /model" 200 name "$url/model"
check "GET /health" 200 status "$url/health"
# Bad input of each kind.
check "text is not an image" 422 not_an_image --data-binary 'hello world' -H 'Content-Type: application/octet-stream' "$url/detect"
head -c 20000 "$jpeg" >"$work/truncated.jpg"
check "truncated JPEG" 422 invalid_image --data-binary @"$work/truncated.jpg" -H 'Content-Type: image/jpeg' "$url/detect"
check "JSON with bad base64" 400 invalid_base64 --data '{"image": "***"}' -H 'Content-Type: application/json' "$url/detect"
check "invalid JSON" 400 invalid_json --data '{"image": ' -H 'Content-Type: application/json' "$url/detect"
check "bad parameter" 400 invalid_parameter --data-binary @"$jpeg" -H 'Content-Type: image/jpeg' "$url/detect?score_threshold=7"
check "empty body" 400 empty_body -X POST -H 'Content-Type: image/jpeg' "$url/detect"
check "unsupported media type" 415 unsupported_media_type --data '<x/>' -H 'Content-Type: application/xml' "$url/detect"
check "multipart without image" 400 missing_image -F score_threshold=0.5 "$url/detect"
check "wrong method" 405 method_not_allowed "$url/detect"
check "unknown route" 404 not_found "$url/nope"
check "still serving after errors" 200 cat --data-binary @"$jpeg" -H 'Content-Type: image/jpeg' "$url/detect"

# Annotated pictures: the body is an image of the photo's size (451x300 for the cat), not JSON.
picture() { # name want-content-type want-size curl-args...
  local name=$1 want_type=$2 want_size=$3
  shift 3
  local got
  got=$(curl -s -o "$work/picture" -w '%{http_code} %{content_type}' "$@" || echo 000)
  if python3 - "$work/picture" "$got" "$want_type" "$want_size" <<'PY'
import struct, sys, zlib
path, got, want_type, want_size = sys.argv[1:]
data = open(path, "rb").read()
status, _, ctype = got.partition(" ")
if status != "200" or ctype != want_type:
    sys.exit(f"HTTP {got}, want 200 {want_type}: {data[:200]!r}")
if data.startswith(b"\x89PNG\r\n\x1a\n"):
    w, h = struct.unpack(">II", data[16:24])
    # Decodes: every IDAT chunk inflates.
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    zlib.decompress(idat)
elif data.startswith(b"\xff\xd8"):
    i = 2
    while True:
        marker, n = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            break
        i += 2 + n
    if not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        sys.exit("JPEG without its end marker")
else:
    sys.exit(f"not a picture: {data[:40]!r}")
if f"{w}x{h}" != want_size:
    sys.exit(f"{w}x{h}, want {want_size}")
PY
  then passed=$((passed + 1)); echo "ok   $name"
  else failed=$((failed + 1)); echo "FAIL $name"
  fi
}
picture "Accept: image/jpeg" image/jpeg 451x300 --data-binary @"$jpeg" -H 'Content-Type: image/jpeg' -H 'Accept: image/jpeg' "$url/detect"
picture "?format=png" image/png 451x300 --data-binary @"$jpeg" -H 'Content-Type: image/jpeg' "$url/detect?format=png"
picture "?format=png&annotate_max_side=200" image/png 200x133 --data-binary @"$jpeg" -H 'Content-Type: image/jpeg' "$url/detect?format=png&annotate_max_side=200"
check "Accept: */* stays JSON" 200 cat --data-binary @"$jpeg" -H 'Content-Type: image/jpeg' -H 'Accept: */*' "$url/detect"

# Every event sample through `cargo lambda invoke` (the only way to send REST v1 and ALB shapes).
for event in events/*.json; do
  name=$(basename "$event" .json)
  if out=$(cargo lambda invoke -P "$port" object-detector --data-file "$event" 2>&1); then
    got=$(printf '%s' "$out" | python3 -c "import json,sys; v=json.load(sys.stdin); print(v.get('statusCode', 'direct'))")
  else
    got="function-error"
  fi
  case "$name" in
    *not-an-image) want=422 ;; *bad-parameter) want=400 ;; *unknown-route) want=404 ;; *wrong-method) want=405 ;;
    direct-*) want=direct ;; *) want=200 ;;
  esac
  if [ "$got" = "$want" ]; then passed=$((passed + 1)); echo "ok   invoke $name ($got)"
  else failed=$((failed + 1)); echo "FAIL invoke $name: got $got, want $want: ${out:0:300}"
  fi
done
# A REST v1 event that asks for the picture: a base64 body flagged isBase64Encoded, as API Gateway needs.
python3 - events/rest-api-jpeg.json >"$work/rest-picture.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
e["headers"]["Accept"] = "image/jpeg"
e.setdefault("multiValueHeaders", {})["Accept"] = ["image/jpeg"]
print(json.dumps(e))
PY
if out=$(cargo lambda invoke -P "$port" object-detector --data-file "$work/rest-picture.json" 2>&1) \
  && printf '%s' "$out" | python3 -c "
import base64, json, sys
v = json.load(sys.stdin)
assert v['statusCode'] == 200 and v['isBase64Encoded'] is True, v.get('statusCode')
assert base64.b64decode(v['body'])[:2] == b'\xff\xd8', 'not a JPEG'
"; then passed=$((passed + 1)); echo "ok   invoke REST v1 picture (base64, isBase64Encoded)"
else failed=$((failed + 1)); echo "FAIL invoke REST v1 picture: ${out:0:300}"
fi
# CORS on the function's own answer (the Invoke API; the function-URL front adds permissive CORS of its
# own): the listed origin gets itself back, any other origin no grant.
for origin in https://app.example.com https://evil.example; do
  python3 - events/http-api-jpeg.json "$origin" >"$work/cors.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
e["headers"]["origin"] = sys.argv[2]
print(json.dumps(e))
PY
  if out=$(cargo lambda invoke -P "$port" object-detector --data-file "$work/cors.json" 2>&1) \
    && printf '%s' "$out" | python3 -c "
import json, sys
h = {k.lower(): v for k, v in json.load(sys.stdin)['headers'].items()}
origin = sys.argv[1]
want = origin if origin == 'https://app.example.com' else None
assert h.get('access-control-allow-origin') == want, h
assert h.get('vary') == 'Origin', h
" "$origin"; then passed=$((passed + 1)); echo "ok   invoke CORS from $origin"
  else failed=$((failed + 1)); echo "FAIL invoke CORS from $origin: ${out:0:300}"
  fi
done
if cargo lambda invoke -P "$port" object-detector --data-ascii '{"Records": []}' >"$work/unknown" 2>&1; then
  failed=$((failed + 1)); echo "FAIL invoke unknown event: succeeded"
elif grep -q invalid_event "$work/unknown"; then passed=$((passed + 1)); echo "ok   invoke unknown event (function error invalid_event)"
else failed=$((failed + 1)); echo "FAIL invoke unknown event: $(head -c 300 "$work/unknown")"
fi

# Warm latency through the emulator.
for _ in $(seq "$warm"); do
  curl -s -o /dev/null -w '%{time_total}\n' --data-binary @"$jpeg" -H 'Content-Type: image/jpeg' "$url/detect"
done >"$work/times"
python3 - "$work/times" "$work/fn.log" "$start_ns" "$ready_ns" <<'PY'
import json, statistics, sys
times = sorted(float(t) * 1000 for t in open(sys.argv[1]))
init = [json.loads(l) for l in open(sys.argv[2]) if '"message":"init"' in l]
first = (int(sys.argv[4]) - int(sys.argv[3])) / 1e6
print(f"warm request, 451x300 JPEG via emulator: median {statistics.median(times):.1f} ms, "
      f"min {times[0]:.1f}, max {times[-1]:.1f} (n={len(times)})")
print(f"init: plan build {init[0]['plan_build_ms']:.1f} ms; process start to first answer {first:.0f} ms")
PY
if grep -q '"level":"ERROR"' "$work/fn.log"; then
  failed=$((failed + 1)); echo "FAIL function logged an error:"; grep '"level":"ERROR"' "$work/fn.log" | head -3
fi
lines=$(grep -c '"message":"request"' "$work/fn.log" || true)
echo "function wrote $lines request log lines"
# The function's stdout: one valid CloudWatch EMF record per request, and nothing else.
if python3 tools/check_emf.py "$work/fn.out" "$work/fn.log"; then passed=$((passed + 1)); echo "ok   metric records on stdout"
else failed=$((failed + 1)); echo "FAIL metric records on stdout"
fi
echo "e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
