#!/usr/bin/env bash
# The main job as a demo on embedded defaults: a throwaway repository, a generated cluster key,
# secrets sealed with public keys only, verified, and revealed with the cluster's identity.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin sealops
sealops="$PWD/target/debug/sealops"
export PATH="$PWD/target/debug:$PATH"   # git's textconv and merge drivers call `sealops`

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HOME="$work/home"   # keep the demo away from your real ~/.config/sealops
mkdir -p "$HOME" "$work/repo"
cd "$work/repo"
git init -q

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "sealops keygen -o cluster.key   (the controller's identity; prints its public key)"
public=$("$sealops" keygen -o "$work/cluster.key")
echo "$public"

step "sealops init --recipient prod=$public"
"$sealops" init --recipient "prod=$public"

step "sealops seal apps/payments/db ...   (public key only: no identity needed)"
"$sealops" seal apps/payments/db --from-literal PASSWORD='correct horse battery staple' \
  --from-literal USER=payments --plain HOST=db.internal
printf 'API_KEY=k-123\nWEBHOOK_SECRET=whsec-456\n' > "$work/web.env"
"$sealops" seal apps/web --from-env-file "$work/web.env"

step "cat secrets/apps/payments/db.yaml   (what reviewers see in a pull request)"
cat secrets/apps/payments/db.yaml

step "sealops verify --identity cluster.key"
"$sealops" verify --identity "$work/cluster.key"

step "sealops reveal secrets/apps -o json --identity cluster.key"
"$sealops" reveal secrets/apps -o json --identity "$work/cluster.key"

step "the cluster's identity compacts the manifest into one session it endorses (rotate-data-key)"
git add -A && git -c user.name=demo -c user.email=demo@example.com commit -qm "seal"
"$sealops" rotate-data-key apps/payments/db --identity "$work/cluster.key"
git add -A && git -c user.name=demo -c user.email=demo@example.com commit -qm "compact"

step "change one value: one line in the diff"
"$sealops" set apps/payments/db PASSWORD 'new password' --identity "$work/cluster.key"
git --no-pager diff --stat
git --no-pager diff --no-textconv -U0 | grep '^[-+] ' || true

step "git diff as a reviewer sees it (textconv: key names and fingerprints, no plaintext)"
git --no-pager diff

echo
echo "Demo finished; the temporary repository was $work/repo (removed on exit)."
