#!/bin/sh
# Installs what the GitLab CI engine tests need, once per machine (idempotent):
# rsync (gitlab-ci-local copies the checkout with it) and gitlab-ci-local itself, pinned by
# tests/cicd/gitlab-ci-local/package-lock.json, with `npm ci` into a cache folder outside the
# clone ($KONFIG_TOOLS_CACHE, default ~/.cache/konfig). Needs Node.js 20+ with npm.
set -eu
if ! command -v rsync >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get install -y -q rsync >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null && apt-get install -y -q rsync >/dev/null; }
    else
        echo "setup-gitlab-ci-local.sh: install rsync first" >&2
        exit 1
    fi
fi
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
[ -x "$here/../../.venv/bin/python" ] && python="$here/../../.venv/bin/python"
cd "$here/../.."
"$python" -c 'from tests.cicd.gitlab_ci_local import install; print(install())'
