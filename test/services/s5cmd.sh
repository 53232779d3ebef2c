#!/usr/bin/env bash
# Builds s5cmd (the bulk S3 downloader the restore benchmark compares against) once into the
# services cache and prints its path. `go install github.com/peak/s5cmd/v2@VERSION` would be the
# natural command, but it also asks the module proxy for the module's version list (to look up
# deprecations) and the proxy reachable here refuses that list with 403; building the same pinned
# version through a throwaway wrapper module fetches only that version.
set -euo pipefail
VERSION="v2.3.0"
CACHE="${CAIRN_SERVICES_CACHE:-$HOME/.cache/cairn-services}/s5cmd/${VERSION}"
BIN="${CACHE}/bin/s5cmd"
if [ ! -x "$BIN" ]; then
  echo "building s5cmd ${VERSION} into ${CACHE} ..." >&2
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (
    cd "$work"
    go mod init cairn-s5cmd-build >/dev/null 2>&1
    printf '//go:build tools\npackage tools\nimport _ "github.com/peak/s5cmd/v2"\n' > tools.go
    go mod edit -require="github.com/peak/s5cmd/v2@${VERSION}"
    go mod tidy >&2
    mkdir -p "${CACHE}/bin"
    go build -o "$BIN.tmp" github.com/peak/s5cmd/v2 >&2
    mv "$BIN.tmp" "$BIN"
  )
fi
echo "$BIN"
