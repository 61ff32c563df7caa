#!/usr/bin/env bash
# Installs what the API, browser and compose tests need, only what is missing: schemathesis, jsonschema and PyYAML
# (pip), Chromium and curl (apt, as root), Node.js and playwright-core (npm ci in e2e/). Used by ./slope test and
# .ci/run. No browser download: Playwright drives Debian's Chromium.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"

apt_install() {
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "install-tools: $* missing; install it (Debian: apt-get install $*)" >&2
        return 1
    fi
    echo "install-tools: apt-get install $*" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

python3 -c "import schemathesis, jsonschema, yaml" 2>/dev/null || {
    echo "install-tools: pip install -r service-tests/src/test/requirements.txt" >&2
    python3 -m pip install --quiet --disable-pip-version-check -r "$ROOT/service-tests/src/test/requirements.txt"
}
missing=()
[[ -x "${CHROMIUM:-/usr/bin/chromium}" ]] || missing+=(chromium)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [[ ${#missing[@]} -gt 0 ]]; then
    apt_install "${missing[@]}"
fi
if [[ ! -d "$ROOT/e2e/node_modules/playwright-core" ]]; then
    echo "install-tools: npm ci in e2e/ (playwright-core)" >&2
    (cd "$ROOT/e2e" && npm ci --silent --no-audit --no-fund)
fi
