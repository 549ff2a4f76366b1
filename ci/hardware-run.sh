#!/usr/bin/env bash
# The nightly hardware run, for any CI (GitHub Actions, Jenkins, GitLab):
# runs `go test ./scenarios` against the board on HIL_PORT and keeps the JUnit
# file, the HTML and JSON reports and the serial log in $HIL_REPORT_DIR.
#
# Needs, from the runner's environment or secret store:
#   HIL_PORT           the board's serial port (e.g. /dev/ttyUSB0); "auto" finds it by USB id
#   HIL_WIFI_SSID      the Wi-Fi network the board joins
#   HIL_WIFI_PASSWORD  its password (never printed)
#   HIL_BROKER_HOST    this runner's address as the board sees it (e.g. 192.168.1.20)
# Optional: HIL_PLATFORM (legacy|studio), HIL_REPORT_DIR (default ./reports).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${HIL_PORT:?set HIL_PORT to the serial port of the board}"
: "${HIL_WIFI_SSID:?set HIL_WIFI_SSID}"
: "${HIL_WIFI_PASSWORD:?set HIL_WIFI_PASSWORD}"
: "${HIL_BROKER_HOST:?set HIL_BROKER_HOST to the address the board can reach}"
export HIL_REPORT_DIR="${HIL_REPORT_DIR:-$PWD/reports}"
mkdir -p "$HIL_REPORT_DIR"

go mod download
status=0
# -p 1: one board, so one test binary at a time; -count=1: never a cached result.
go test -p 1 -count=1 -timeout 60m -v ./scenarios 2>&1 | tee "$HIL_REPORT_DIR/go-test.log" || status=$?
echo "reports in $HIL_REPORT_DIR:"
ls -l "$HIL_REPORT_DIR"
exit "$status"
