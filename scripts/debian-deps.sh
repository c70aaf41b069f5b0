# Sourced by the scripts: installs the Debian packages a fresh machine with only Rust may lack.
#   cc       the linker rustc calls, and the C compiler tract's kernels need (gcc)
#   python3  with venv, when the caller sets NEED_PYTHON=1 (tests and benches only)
#   curl     when the caller sets NEED_CURL=1 (the demo)
#   strace   when the caller sets NEED_STRACE=1 (tests: the agent's syscalls are checked for
#            network and file access, e.g. ONNX Runtime's telemetry)
_missing=()
command -v cc >/dev/null 2>&1 || _missing+=(gcc libc6-dev)
if [ "${NEED_PYTHON:-0}" = 1 ]; then
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        _missing+=(python3 python3-venv python3-pip)
    fi
fi
if [ "${NEED_STRACE:-0}" = 1 ]; then
    command -v strace >/dev/null 2>&1 || _missing+=(strace)
fi
if [ "${NEED_CURL:-0}" = 1 ]; then
    command -v curl >/dev/null 2>&1 || _missing+=(curl ca-certificates)
fi
if [ ${#_missing[@]} -gt 0 ]; then
    echo "==> installing Debian packages: ${_missing[*]}"
    _sudo=""
    [ "$(id -u)" -ne 0 ] && _sudo="sudo"
    $_sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $_sudo apt-get install -y -qq "${_missing[@]}" >/dev/null
fi
unset _missing _sudo
