#!/usr/bin/env bash
# Reproduces model/font/dejavu-sans-bold.ascii.ttf, the label font of annotated images: DejaVu Sans Bold
# from Debian's fonts-dejavu-core (2.37-6), cut to printable ASCII (U+0020..U+007E, what labels and
# scores use) with fonttools' pyftsubset, hinting and layout tables dropped. Its licence is
# model/font/LICENSE.txt (the Bitstream Vera licence; DejaVu's changes are in the public domain).
#
#   tools/make_font.sh        (needs apt-get as root, and .venv from tools/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
src=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf
[ -f "$src" ] || { apt-get update -qq && apt-get install -y -qq fonts-dejavu-core; }
.venv/bin/pip install -q fonttools==4.68.0
.venv/bin/pyftsubset "$src" --unicodes=U+0020-007E --no-hinting --layout-features= \
  --name-IDs='*' --output-file=model/font/dejavu-sans-bold.ascii.ttf
cp /usr/share/doc/fonts-dejavu-core/copyright model/font/LICENSE.txt
sha256sum model/font/dejavu-sans-bold.ascii.ttf
