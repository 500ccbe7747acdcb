#!/usr/bin/env bash
# Installs the Debian font packages that the synthetic data generators in models/data/ render with.
# Every name was checked with `apt-cache policy` on Debian bookworm. Run as root.
set -euo pipefail
PKGS=(
  fonts-ocr-b        # OCR-B: bank card numbers (ISO 1073-2)
  fonts-ocr-a        # OCR-A: alternative machine-readable card/VIN look
  fonts-dseg         # DSEG7/DSEG14: 7- and 14-segment meter digits
  fonts-noto-cjk     # Noto Sans/Serif CJK: Chinese ID cards, plate province characters
  fonts-wqy-microhei # WenQuanYi Micro Hei: second Chinese face
  fonts-roadgeek     # road-sign faces: plate / mechanical-counter look
  fonts-dejavu       # DejaVu Sans/Mono/Serif: general Latin and digits
  fonts-liberation   # Liberation Sans/Mono/Serif: general Latin and digits
)
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${PKGS[@]}"
fc-cache -f >/dev/null 2>&1 || true
