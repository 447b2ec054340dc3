#!/usr/bin/env bash
# A self-signed certificate for trying HTTPS locally (never for production):
#   bash scripts/dev-cert.sh [folder]     # default folder: .dev-tls
#   .venv/bin/kefu serve --tls-cert .dev-tls/server.crt --tls-key .dev-tls/server.key
#   curl --cacert .dev-tls/server.crt https://localhost:8000/
# ECDSA P-256, valid 30 days for localhost, 127.0.0.1 and ::1; the key is written with mode 600.
set -euo pipefail

out="${1:-.dev-tls}"
python="${PYTHON:-.venv/bin/python}"
mkdir -p "$out"
"$python" - "$out" <<'PY'
import sys
from pathlib import Path

from kefu.tls import write_dev_certificate

folder = Path(sys.argv[1])
write_dev_certificate(folder / "server.crt", folder / "server.key")
print(f"wrote {folder / 'server.crt'} and {folder / 'server.key'}")
PY
