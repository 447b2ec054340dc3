#!/usr/bin/env bash
# Install the pgvector extension (0.8.0) into the local PostgreSQL server, for kefu's pgvector index
# (kefu.kb.vectors.PgVectorIndex) and its contract tests.
#
# Debian bookworm has no postgresql-<N>-pgvector package, so this builds Debian trixie's source tarball
# (sha256-verified) against the server's headers: postgresql-server-dev-<N> and build-essential are
# installed with apt-get when missing. Idempotent: does nothing when vector.control is already in the
# server's extension folder. The server version is $PG_MAJOR if set, else the running cluster
# (pg_lsclusters), else the newest installed one. No restart is needed afterwards; each database then
# needs `CREATE EXTENSION vector` once (kefu does it on first use when its user may).
set -euo pipefail

VERSION=0.8.0
SHA256=867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0
URL="http://deb.debian.org/debian/pool/main/p/pgvector/pgvector_${VERSION}.orig.tar.gz"

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  SUDO="sudo"
fi

server_major() {
  if [[ -n "${PG_MAJOR:-}" ]]; then
    echo "$PG_MAJOR"
  elif command -v pg_lsclusters >/dev/null 2>&1 && pg_lsclusters -h | awk '$4 == "online" {found=1} END {exit !found}'; then
    pg_lsclusters -h | awk '$4 == "online" {print $1; exit}'
  elif ls -d /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    ls -d /usr/lib/postgresql/*/bin/postgres | sed 's#/usr/lib/postgresql/\([0-9]*\)/.*#\1#' | sort -n | tail -1
  elif command -v pg_config >/dev/null 2>&1; then
    pg_config --version | sed 's/^PostgreSQL \([0-9]*\).*/\1/'
  else
    echo "install-pgvector.sh: no PostgreSQL server found on this machine; install PostgreSQL first," >&2
    echo "or install pgvector where your server runs (e.g. the postgresql-<N>-pgvector package)" >&2
    exit 1
  fi
}

MAJOR=$(server_major)
PG_CONFIG="/usr/lib/postgresql/${MAJOR}/bin/pg_config"
if [[ ! -x "$PG_CONFIG" ]]; then
  PG_CONFIG=$(command -v pg_config || true)
fi
if [[ -z "$PG_CONFIG" ]]; then
  echo "install-pgvector.sh: no pg_config for PostgreSQL ${MAJOR}; install postgresql-client-${MAJOR}" >&2
  exit 1
fi
EXTENSION_DIR="$("$PG_CONFIG" --sharedir)/extension"

if [[ -f "$EXTENSION_DIR/vector.control" ]]; then
  echo "pgvector already installed for PostgreSQL ${MAJOR}: $EXTENSION_DIR/vector.control"
  exit 0
fi

packages=("postgresql-server-dev-${MAJOR}" build-essential)
missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-pgvector.sh needs apt-get (Debian/Ubuntu) to install ${missing[*]}; install them by hand" >&2
    exit 1
  fi
  echo "installing build dependencies: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "downloading $URL"
curl -fsSL --retry 3 -o "$work/pgvector.tar.gz" "$URL"
echo "$SHA256  $work/pgvector.tar.gz" | sha256sum --check --quiet - || {
  echo "install-pgvector.sh: the downloaded tarball does not match sha256 $SHA256; not installing it" >&2
  exit 1
}
mkdir "$work/src"
tar -xzf "$work/pgvector.tar.gz" -C "$work/src" --strip-components=1

echo "building pgvector ${VERSION} for PostgreSQL ${MAJOR} ($PG_CONFIG)"
# OPTFLAGS="" as Debian's own package does: a portable build, no -march=native.
make -C "$work/src" -s PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >/dev/null
$SUDO make -C "$work/src" -s PG_CONFIG="$PG_CONFIG" OPTFLAGS="" install >/dev/null

if [[ ! -f "$EXTENSION_DIR/vector.control" ]]; then
  echo "install-pgvector.sh: make install finished but $EXTENSION_DIR/vector.control is missing" >&2
  exit 1
fi
echo "installed pgvector ${VERSION} for PostgreSQL ${MAJOR}: $EXTENSION_DIR/vector.control," \
  "$("$PG_CONFIG" --pkglibdir)/vector.so"
echo "enable it per database with: CREATE EXTENSION IF NOT EXISTS vector"
