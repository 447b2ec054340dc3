#!/usr/bin/env bash
# The local model's bindings (llama-cpp-python, built from source) in a virtualenv, and a smoke test.
#
#   bash scripts/install-local-model.sh VENV           build the wheel once, install it into VENV
#   bash scripts/install-local-model.sh --smoke VENV   a multi-token generation in a separate process
#
# Portable by default: the machine that builds is not always the one that runs (a build for the exact
# CPU crashed with SIGSEGV on another VM of the same family). x86-64 gets AVX2/FMA/F16C and no
# AVX-512; ARM64 gets the armv8-a baseline. CMAKE_ARGS replaces these flags (e.g. "-DGGML_CUDA=on",
# or "-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod" for Graviton2+/Ampere/Apple M/RPi 5).
#
# pip's own wheel cache is not keyed on CMAKE_ARGS, so it could hand back a wheel built with other
# flags. The wheel is therefore built with --no-cache-dir into kefu's cache,
# ${KEFU_WHEEL_CACHE:-~/.cache/kefu/wheels}/<hash of version, flags, Python, machine>/, and installed
# from there: one build per machine and set of flags, shared by every clone and virtualenv.
set -euo pipefail

LLAMA_VERSION=0.3.36
PORTABLE_X86="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF"
PORTABLE_ARM="-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8-a"

smoke=0
if [ "${1:-}" = "--smoke" ]; then
  smoke=1
  shift
fi
VENV="${1:?usage: install-local-model.sh [--smoke] VENV}"
PY="$VENV/bin/python"

portable_flags() {
  case "$(uname -m)" in
    x86_64 | amd64) echo "$PORTABLE_X86 -DLLAVA_BUILD=OFF" ;;
    aarch64 | arm64) echo "$PORTABLE_ARM -DLLAVA_BUILD=OFF" ;;
    *) echo "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" ;;
  esac
}

FLAGS="${CMAKE_ARGS:-$(portable_flags)}"
KEY="$("$PY" -c 'import hashlib, platform, sys
key = "\n".join([sys.argv[1], sys.argv[2], sys.implementation.cache_tag, platform.machine()])
print(hashlib.sha256(key.encode()).hexdigest()[:16])' "$LLAMA_VERSION" "$FLAGS")"
CACHE="${KEFU_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kefu/wheels}"
WHEEL_DIR="$CACHE/$KEY"
MARKER="$VENV/.kefu-llama-cpp-python"
REBUILD="rm -rf '$WHEEL_DIR' && CMAKE_ARGS='$(portable_flags)' make install"

# A multi-token generation in its own process: a build for the wrong CPU dies here, not on a customer.
SMOKE_CODE='
import time
from kefu.config import Settings
from kefu.llm.local import LocalModelConfig, load_llama
llama = load_llama(LocalModelConfig(None, Settings().cache_dir))
started = time.perf_counter()
out = llama.create_completion("Customer service FAQ. Question: how long does delivery take? Answer:",
                              max_tokens=16, temperature=0)
tokens, prompt = out["usage"]["completion_tokens"], out["usage"]["prompt_tokens"]
assert tokens >= 8, f"only {tokens} tokens generated: {out}"
print(f"local model: smoke test passed, {tokens} tokens from a {prompt}-token prompt "
      f"in {time.perf_counter() - started:.1f} s")
'
run_smoke() {
  echo "local model: smoke test (join/verify the bundled weights once, load, generate)"
  set +e
  HF_HUB_OFFLINE=1 "$PY" -c "$SMOKE_CODE"
  rc=$?
  set -e
  if [ "$rc" -gt 128 ]; then
    echo "ERROR: the local model crashed (signal $((rc - 128))$(kill -l $((rc - 128)) 2>/dev/null | sed 's/^/, SIG/')) on a" \
      "multi-token generation: llama-cpp-python was built for another CPU. Rebuild it portable:" >&2
    echo "  $REBUILD" >&2
    echo "A CPU without AVX2 (no avx2 in /proc/cpuinfo) needs CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=OFF" \
      "-DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_AVX512=OFF'; or use a model server (KEFU_LLM=openai, see the README)." >&2
    exit 1
  elif [ "$rc" -ne 0 ]; then
    echo "ERROR: the local model smoke test failed (exit $rc, error above). If llama.cpp is at fault," \
      "rebuild it: $REBUILD" >&2
    exit 1
  fi
}

# ninja's "[37/140]" steps as one line per 5 %, with the elapsed time; the whole output goes to $1.
show_progress() {
  local line last=-1 step total pct
  while IFS= read -r line; do
    printf '%s\n' "$line" >>"$1"
    if [[ $line =~ \[([0-9]+)/([0-9]+)\] ]]; then
      step=${BASH_REMATCH[1]} total=${BASH_REMATCH[2]}
      pct=$((100 * step / total))
      if [ $((pct / 5)) -ne "$last" ] && [ "$total" -gt 1 ]; then
        last=$((pct / 5))
        printf '  building llama.cpp (6-13 min on 2 cores): step %d/%d, %d%%, %dm%02ds\n' \
          "$step" "$total" "$pct" $((SECONDS / 60)) $((SECONDS % 60))
      fi
    fi
  done
}

build_wheel() {
  local tmp log
  mkdir -p "$CACHE"
  tmp="$(mktemp -d "$CACHE/.build-$KEY.XXXXXX")"
  log="$CACHE/build-$KEY.log"
  : >"$log"
  echo "local model: building llama-cpp-python $LLAMA_VERSION from source, once per machine and flags"
  echo "  CMAKE_ARGS=$FLAGS"
  echo "  full log: $log"
  SECONDS=0
  if ! CMAKE_ARGS="$FLAGS" "$PY" -m pip wheel --no-deps --no-binary llama-cpp-python --no-cache-dir -v \
    -w "$tmp" "llama-cpp-python==$LLAMA_VERSION" 2>&1 | show_progress "$log"; then
    tail -n 25 "$log" >&2
    echo "ERROR: building llama-cpp-python failed (log: $log). It needs a C/C++ compiler and CMake" \
      "(Debian/Ubuntu: sudo apt-get install build-essential cmake); or use KEFU_LLM=openai." >&2
    rm -rf "$tmp"
    exit 1
  fi
  mkdir -p "$WHEEL_DIR"
  mv "$tmp"/llama_cpp_python-*.whl "$WHEEL_DIR"/
  rm -rf "$tmp"
  echo "local model: built in $((SECONDS / 60))m$((SECONDS % 60))s, cached in $WHEEL_DIR"
}

install_wheel() {
  local wheel
  if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$KEY" ] &&
    "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama-cpp-python') != '$LLAMA_VERSION')" 2>/dev/null; then
    echo "local model: llama-cpp-python $LLAMA_VERSION (build $KEY) already installed"
    return
  fi
  wheel="$(ls "$WHEEL_DIR"/llama_cpp_python-*.whl 2>/dev/null | head -n 1 || true)"
  if [ -z "$wheel" ]; then
    build_wheel
    wheel="$(ls "$WHEEL_DIR"/llama_cpp_python-*.whl | head -n 1)"
  fi
  # Whatever was installed before may be a build for another CPU: replace it with ours.
  "$PY" -m pip uninstall --quiet --yes llama-cpp-python >/dev/null 2>&1 || true
  "$PY" -m pip install --quiet "$wheel"
  echo "$KEY" >"$MARKER"
  echo "local model: installed $(basename "$wheel") (build $KEY: $FLAGS)"
}

if [ "$smoke" = 1 ]; then
  run_smoke
else
  install_wheel
fi
