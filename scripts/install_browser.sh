#!/usr/bin/env bash
# Install the headless browser that tests/test_book.py drives: Debian's chromium and its
# chromedriver (Selenium runs with SE_OFFLINE=true and never downloads a browser or a driver).
# Needs root (CI runs as root). Does nothing when both are already installed.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    echo "[browser] $(chromium --version 2>/dev/null) and chromedriver already installed"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "[browser] needs root: sudo apt-get update && sudo apt-get install -y chromium chromium-driver" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q chromium chromium-driver
echo "[browser] installed $(chromium --version 2>/dev/null)"
