#!/usr/bin/env bash
# Fetch the public prompt-injection / jailbreak collections listed in
# src/kefu/evals/injection_sources.yaml into DIR (DIR/<owner>+<name>/<path>, at the pinned commit),
# for `kefu eval injection --attacks DIR`. The data stays outside the repository: never commit it.
#   scripts/fetch_injection_attacks.sh ~/.cache/kefu/injection-attacks
set -euo pipefail
dir=${1:?usage: $0 DIR}
manifest="$(dirname "$0")/../src/kefu/evals/injection_sources.yaml"
mkdir -p "$dir"
python3 - "$manifest" <<'PY' | while read -r repo commit path; do
import sys, yaml
for s in yaml.safe_load(open(sys.argv[1]))["sources"]:
    print(s["repo"], s["commit"], s["path"])
PY
  dest="$dir/${repo/\//+}"
  if [ ! -d "$dest/.git" ]; then
    git clone --quiet --filter=blob:none --no-checkout "https://github.com/$repo.git" "$dest" \
      || { echo "could not clone $repo; check the network, or skip it (the eval reports it as missing)" >&2; continue; }
  fi
  git -C "$dest" sparse-checkout set --no-cone "/$path" >/dev/null
  git -C "$dest" checkout --quiet "$commit" \
    || echo "commit $commit of $repo is gone; update injection_sources.yaml to a current commit" >&2
  echo "$repo@${commit:0:7}: $path"
done
