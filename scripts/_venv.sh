# Sourced by the scripts: make .venv and install the locked dependencies (requirements.lock) and GetMeds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

apt_wait() {
    # apt-get that waits for another apt-get or dpkg (an unattended upgrade, say)
    # instead of failing at once: up to 10 minutes, saying why it waits.
    local out code
    for _ in $(seq 1 120); do
        set +e
        out="$(DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=5 "$@" 2>&1)"
        code=$?
        set -e
        if [ "$code" = 0 ]; then
            return 0
        fi
        if ! grep -qiE "could not get lock|unable to acquire|is another process using it" \
                <<<"$out"; then
            printf '%s\n' "$out" >&2
            return "$code"
        fi
        echo "Another apt-get or dpkg is running; waiting for it to finish ..." >&2
        sleep 5
    done
    echo "apt-get: the package manager stayed busy for 10 minutes; try again later." >&2
    return 1
}

missing_qt_libs() {
    # The Qt runtime libraries GetMeds needs on Debian/Ubuntu.
    local libs=(libegl1 libgl1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1
                libxcb-image0 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xkb1
                libdbus-1-3 fontconfig fonts-dejavu-core)
    command -v dpkg >/dev/null || return 0
    local need=()
    for p in "${libs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
    if ((${#need[@]})); then
        if [ "$(id -u)" = 0 ]; then
            apt_wait update -qq
            apt_wait install -y -qq --no-install-recommends "${need[@]}"
        else
            echo "GetMeds needs these system libraries; install them with:" >&2
            echo "  sudo apt-get install ${need[*]}" >&2
            exit 1
        fi
    fi
}

ensure_venv() {
    local py="${PYTHON:-python3}"
    if [ ! -x "$VENV/bin/python" ]; then
        echo "Creating the virtual environment in .venv ..." >&2
        "$py" -m venv "$VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip
    fi
    # The locked versions (hashes checked), then GetMeds itself on top of them:
    # every workstation, CI run and build gets the same libraries.
    local stamp="$VENV/.installed"
    if [ ! -f "$stamp" ] || [ "$ROOT/requirements.lock" -nt "$stamp" ] \
            || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
        echo "Installing GetMeds Desktop and its locked dependencies ..." >&2
        "$VENV/bin/python" -m pip install -q --require-hashes -r "$ROOT/requirements.lock"
        "$VENV/bin/python" -m pip install -q --no-deps -e "$ROOT"
        touch "$stamp"
    fi
    export PATH="$VENV/bin:$PATH"
}
