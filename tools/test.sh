#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). Works on a fresh machine with Rust, Python 3.11
# and pip: the Python tools are installed into .venv from tools/requirements.txt.
#
#   tools/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
start_s=$(date +%s)
# Each step's heading also gives the disk space left: a CI machine once ran out of it mid-build.
step() {
  printf '\n== %s (at %d s, %s free)\n' "$*" "$(( $(date +%s) - start_s ))" \
    "$(df -h --output=avail . | tail -1 | tr -d ' ')"
}

step "python tools (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r tools/requirements.txt
export PATH="$PWD/.venv/bin:$PATH"

step "deployment lints: SAM templates, Dockerfile, the dashboard and alarms against the metrics"
export SAM_CLI_TELEMETRY=0
for template in template.yaml template-image.yaml; do
  cfn-lint "$template"
  cfn-lint "$template" -a cfn_lint_serverless.rules
  sam validate --lint -t "$template"
done
hadolint Dockerfile
python tools/check_template.py template.yaml docs/operating.md

step "layers: core -> nothing of aws or settings, aws -> core, settings -> both; no circle (tools/check_layers.py)"
python tools/check_layers.py --self-test
python tools/check_layers.py

step "format and lints (every feature), dependency licences, bans and sources (deny.toml)"
cargo fmt --check
cargo deny --log-level error check licenses bans sources
tools/licenses.sh --check
cargo clippy --locked --all-targets --all-features -- -D warnings

step "unit and integration tests, every feature (tests/it/backends.rs: onnxruntime from the wheel's library, tract on two threads)"
# One test build with every feature: the default paths run as they do without them, and the optional
# backends are checked against them. The default build itself is the release build below.
ort_lib="$(python -c 'import onnxruntime, pathlib; print(sorted((pathlib.Path(onnxruntime.__file__).parent / "capi").glob("libonnxruntime.so*"))[0])')"
ORT_DYLIB_PATH="$ort_lib" cargo test --locked --all-features
# Nothing after this step uses the debug build; .ci/run sets DROP_DEBUG_BUILD=1 so that its disk space
# goes to the release and fuzz builds.
if [ "${DROP_DEBUG_BUILD:-}" = 1 ]; then rm -rf target/debug; fi

step "reference pipeline reproduces the committed goldens (onnxruntime)"
python tools/reference.py check tests/golden tests/images/{astronaut,chelsea,coffee,camera,rocket}.png | tail -1

step "numpy decoder references reproduce tests/models/expected.json (onnxruntime)"
python tools/make_test_models.py check tests/models

step "release build"
cargo build --locked --release --bins

step "main job: a sample event through the real handler"
target/release/object-detector events/http-api-jpeg.json

step "hostile images: every class of tools/hostile_images.py answered as it should, CPU and peak per image (benches/hostile.py)"
python benches/hostile.py --check target/release/detect

step "bring your own model: third-party exports through MODEL_PATH (when ../shared exists), and the committed NanoDet-g, the build-time alternative"
python tools/check_thirdparty.py target/release/detect

step "accuracy: detect eval held to pycocotools on COCO val2017 photos, and the embedded model's mAP gate (when ../shared/eval exists)"
python tools/check_coco_eval.py target/release/detect --min-map 0.34

step "fuzzing: every target 10 s on its seed corpus (tools/fuzz.sh; needs a nightly toolchain)"
tools/fuzz.sh 10

step "end to end through the Lambda emulator"
tests/e2e.sh target/release/object-detector

step "other systems' protocols end to end: TF Serving's REST API, boto3's Rekognition and Lambda clients (S3 in moto_server), tritonclient, through the emulator"
python tests/protocols_e2e.py target/release/object-detector

step "image sources end to end: image_url from HTTPS (a test CA) and HTTP servers, the SSRF guard and the fetch budget, s3 objects in moto_server, images lists, through the emulator"
python tests/inputs_e2e.py target/release/object-detector

step "the demo page in a real browser: Debian's chromium headless through selenium and chromium-driver, against the function behind the emulator"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
python tests/demo_page_e2e.py target/release/object-detector target/demo-page.png

step "batch path end to end: moto_server's S3 and SQS, real notifications, the Lambda emulator"
python tests/batch_e2e.py target/release/object-detector

step "memory sizes: the costliest accepted image of each format at 128, 256 and 512 MB, in a memory cgroup (root)"
python tests/memory_caps.py target/release/object-detector

step "soak: 1,000 mixed invocations on one warm process, nothing lost, RSS flat, descriptors flat"
python tests/soak.py --requests 1000 target/release/object-detector
