"""End-to-end test of the demo page (`GET /`) in a real browser: Debian's chromium, headless, driven by
WebDriver (selenium with Debian's chromium-driver), against the real function behind `cargo lambda watch`'s
function-URL front.

    python tests/demo_page_e2e.py [BINARY] [SCREENSHOT]
        (defaults target/release/object-detector, target/demo-page.png)

Starts the emulator and the function on 127.0.0.1 (IMAGE_URL_HOSTS=127.0.0.1) and a photo server on
127.0.0.1 in this process; stops them at the end (the processes by PID). Then, in the browser:

- the page loads under its Content-Security-Policy and its script runs (it reads `GET /model`: the model's
  name shows, the threshold is the model's default);
- a test photo uploaded through the file input: the list holds the detections `POST /detect` gives for the
  same photo with the same threshold (labels and scores), the canvas shows the photo at its size; the
  screenshot is kept (SCREENSHOT);
- a photo named by URL: the list holds `/detect`'s detections for it, drawn by the function;
- a file that is not an image: the error is shown in words, the API's message.

Without chromium or chromedriver on the machine it says so and fails (tools/test.sh installs them).
"""

import base64
import http.server
import json
import pathlib
import shutil
import sys
import tempfile
import threading
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from harness import ROOT, Processes, free_port, function_env, wait_for_port

BIN = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "target/release/object-detector")
SCREENSHOT = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else ROOT / "target/demo-page.png")

failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)
    if not ok:
        failures.append(name)


def detect(url, body, threshold):
    request = urllib.request.Request(f"{url}/detect?score_threshold={threshold}", data=body,
                                     headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.loads(r.read())


class Photos(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        file = ROOT / "tests/images" / self.path.lstrip("/")
        body = file.read_bytes() if file.is_file() and "/" not in self.path.lstrip("/") else b""
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def rows(driver):
    """The detections list as (label, score) pairs."""
    out = []
    for row in driver.find_elements(By.CSS_SELECTOR, "#detections tr.detection"):
        cells = row.find_elements(By.TAG_NAME, "td")
        out.append((cells[0].text.strip(), cells[1].text.strip()))
    return out


def answered(driver, n):
    WebDriverWait(driver, 60).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute(
        "data-answered") == str(n) or "error" in d.find_element(By.ID, "status").get_attribute("class"))


def main():
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        sys.exit("demo page e2e: chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    photos = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Photos)
    threading.Thread(target=photos.serve_forever, daemon=True).start()
    photo_port = photos.server_address[1]
    with tempfile.TemporaryDirectory() as logs, Processes(logs) as procs:
        port = free_port()
        procs.emulator(port, "watch.log")
        env = function_env(port, IMAGE_URL_HOSTS="127.0.0.1")
        procs.start([BIN], "function.log", stdout="function.out", env=env)
        url = f"http://127.0.0.1:{port}/lambda-url/object-detector"
        wait_for_port(port, "the emulator")
        model = json.loads(urllib.request.urlopen(f"{url}/model", timeout=60).read())
        threshold = model["defaults"]["score_threshold"]

        with urllib.request.urlopen(f"{url}/", timeout=60) as r:
            headers = {k.lower(): v for k, v in r.getheaders()}
        policy = headers.get("content-security-policy", "")
        check("GET / is the page, under a strict Content-Security-Policy",
              headers.get("content-type", "").startswith("text/html") and policy.startswith("default-src 'none'")
              and "connect-src 'self'" in policy and "'unsafe-inline'" not in policy, headers)

        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"]:
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        try:
            driver.get(f"{url}/")
            WebDriverWait(driver, 60).until(lambda d: model["name"] in d.find_element(By.ID, "model").text)
            check("the page's script runs under its policy and reads GET /model",
                  driver.find_element(By.ID, "threshold").get_attribute("value") == str(threshold),
                  driver.find_element(By.ID, "model").text)

            photo = ROOT / "tests/images/coffee.jpg"
            want = detect(url, photo.read_bytes(), threshold)
            driver.find_element(By.ID, "file").send_keys(str(photo))
            answered(driver, 1)
            got = rows(driver)
            expected = [(d["label"], f"{d['score']:.3f}") for d in want["detections"]]
            check("an uploaded photo: the list holds /detect's detections", got == expected and got,
                  (got, expected, driver.find_element(By.ID, "status").text))
            size = driver.execute_script("const c = document.getElementById('canvas'); return [c.width, c.height];")
            check("the canvas shows the photo at its size",
                  size == [want["image"]["width"], want["image"]["height"]], size)
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(SCREENSHOT))
            print(f"screenshot: {SCREENSHOT}")

            driver.find_element(By.ID, "url").send_keys(f"http://127.0.0.1:{photo_port}/chelsea.jpg")
            driver.find_element(By.ID, "send-url").click()
            answered(driver, 2)
            cat = detect(url, (ROOT / "tests/images/chelsea.jpg").read_bytes(), threshold)
            expected = [(d["label"], f"{d['score']:.3f}") for d in cat["detections"]]
            got = rows(driver)
            check("a photo by URL: the list holds /detect's detections", got == expected and got,
                  (got, expected, driver.find_element(By.ID, "status").text))

            text = pathlib.Path(logs) / "notes.jpg"
            text.write_bytes(b"not a photo at all")
            driver.find_element(By.ID, "file").send_keys(str(text))
            WebDriverWait(driver, 60).until(
                lambda d: "error" in d.find_element(By.ID, "status").get_attribute("class"))
            shown = driver.find_element(By.ID, "status").text
            check("a file that is not an image: the API's error in words", "not_an_image" in shown
                  and "not an image" in shown.lower(), shown)
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"
                      and "Content Security Policy" in e["message"]]
            check("the browser reported no Content-Security-Policy violation", not errors, errors[:3])
        finally:
            driver.quit()
    photos.shutdown()
    print(f"demo page e2e: {len(failures)} failed" if failures else "demo page e2e: all passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
