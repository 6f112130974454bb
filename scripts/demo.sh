#!/usr/bin/env bash
# The main job as a demo on embedded defaults: a throwaway repository with the example policies,
# identities and targets, a generated cluster key, secrets sealed with public keys only, signed
# commits, and the controller materialising what the targets ask for — then refusing an
# unsigned change while the outputs keep their last verified content.
set -euo pipefail
cd "$(dirname "$0")/.."
examples="$PWD/examples"
cargo build --quiet --bin sealops --bin sealops-controller
sealops="$PWD/target/debug/sealops"
controller="$PWD/target/debug/sealops-controller"
export PATH="$PWD/target/debug:$PATH"   # git's textconv and merge drivers call `sealops`

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HOME="$work/home"   # keep the demo away from your real ~/.config/sealops and ~/.gitconfig
export GIT_CONFIG_NOSYSTEM=1
mkdir -p "$HOME" "$work/repo"
cd "$work/repo"
git init -q -b main

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "an SSH signing key for demo@example.com; every commit is signed (git commit -S)"
ssh-keygen -q -t ed25519 -N '' -C demo@example.com -f "$work/demo-signer"
git config user.name Demo && git config user.email demo@example.com
git config gpg.format ssh && git config user.signingkey "$work/demo-signer" && git config commit.gpgsign true
echo "demo@example.com namespaces=\"git\" $(cut -d' ' -f1,2 "$work/demo-signer.pub")" > "$work/allowed_signers"

step "sealops keygen -o cluster.key   (the controller's identity; prints its public key)"
public=$("$sealops" keygen -o "$work/cluster.key")
echo "$public"

step "sealops init --recipient prod=$public"
"$sealops" init --recipient "prod=$public"

step "policies, identities and targets from examples/ (demo@example.com is a platform admin)"
cp -r "$examples/policies" "$examples/identities" "$examples/targets" .
printf 'sealops: v1\nname: demo@example.com\nkind: human\npolicies: [platform-admin]\n' > identities/demo.yaml
ls policies identities targets

step "sealops seal apps/payments/db ...   (public key only: no identity needed)"
"$sealops" seal apps/payments/db --from-literal DB_PASSWORD='correct horse battery staple' \
  --from-literal DB_USER=payments --plain DB_HOST=db.internal --plain DB_PORT=5432
printf 'API_KEY=k-123\nWEBHOOK_SECRET=whsec-456\n' > "$work/web.env"
"$sealops" seal apps/web/env --from-env-file "$work/web.env"

step "cat secrets/apps/payments/db.yaml   (what reviewers see in a pull request)"
cat secrets/apps/payments/db.yaml

step "sealops verify --identity cluster.key"
"$sealops" verify --identity "$work/cluster.key"

step "sealops reveal secrets/apps -o json --identity cluster.key"
"$sealops" reveal secrets/apps -o json --identity "$work/cluster.key"

step "the cluster's identity compacts the manifest into one session it endorses (rotate-data-key)"
git add -A && git commit -qm "seal"
"$sealops" rotate-data-key apps/payments/db --identity "$work/cluster.key"
git add -A && git commit -qm "compact"

step "change one value: one line in the diff"
"$sealops" set apps/payments/db DB_PASSWORD 'new password' --identity "$work/cluster.key"
git --no-pager diff --stat
git --no-pager diff --no-textconv -U0 | grep '^[-+] ' || true

step "git diff as a reviewer sees it (textconv: key names and fingerprints, no plaintext)"
git --no-pager diff
git commit -qam "rotate the payments database password"

step "sealops-controller: a local configuration (nothing in the repository can widen it)"
mkdir -p "$work/out"
# The trust anchor: the commit we just reviewed. A fresh controller starts only from a pinned one.
anchor=$(git rev-parse HEAD)
cat > "$work/controller.yaml" <<CONFIG
sealops: v1
repository: {path: $work/repo, branch: main}
identity_files: [$work/cluster.key]
state_dir: $work/state
node: {name: demo-node, labels: {env: prod}}
output_roots: [$work/out]
hooks:
  restart-payments: {command: [touch, $work/payments-restarted], timeout: 10s}
trust: {allowed_signers_file: $work/allowed_signers, initial_commit: $anchor}
CONFIG
cat "$work/controller.yaml"
"$controller" check-config --config "$work/controller.yaml"

step "sealops-controller audit-key: register the controller's audit key (the trust root of the audit trail)"
{ echo "sealops: v1"; echo "controllers:"; "$controller" audit-key --config "$work/controller.yaml"; } > .sealops/controllers.yaml
cat .sealops/controllers.yaml
git add .sealops/controllers.yaml && git commit -qm "register the demo controller's audit key"
# The registration is part of the reviewed state the controller is pinned to.
anchor=$(git rev-parse HEAD)
sed -i "s/initial_commit: [0-9a-f]*/initial_commit: $anchor/" "$work/controller.yaml"

step "sealops-controller run --once   (verify signatures and authorisation, check read policy, decrypt, write)"
"$controller" run --once --config "$work/controller.yaml" --log-level warn > "$work/status.json"
sed -n '/"applied": {/,/}/p' "$work/status.json"
(cd "$work/out" && find . -type f -exec ls -l {} + | awk '{print $1, $NF}')
for file in payments/db.env payments/database-url web/secret.yaml; do
  printf -- '--- out/%s\n' "$file"; cat "$work/out/$file"; echo
done
[ -e "$work/payments-restarted" ] && echo "hook restart-payments ran (its outputs changed)"

step "an unsigned commit changes the password: refused as a whole, outputs keep their content"
"$sealops" set apps/payments/db DB_PASSWORD 'sneaky' --identity "$work/cluster.key"
git -c commit.gpgsign=false commit -qam "unsigned change"
if "$controller" run --once --config "$work/controller.yaml" --log-level error > "$work/status.json"; then
  echo "unexpected: the unsigned commit was applied" >&2; exit 1
fi
grep -A5 '"refusals"' "$work/status.json" | grep -E '"reason"|"message"'
grep DB_PASSWORD "$work/out/payments/db.env"

step "the audit trail the controller pushed to sealops/audit (values only as HMAC fingerprints)"
"$sealops" audit log -o table | tail -n 8
# The registry of audit keys is trusted as of the commit the controller applied (HEAD is the
# refused unsigned commit); --base checks that every commit up to it is authorised.
"$sealops" audit verify --registry-at "$anchor" --base "$anchor" --trusted-signers "$work/allowed_signers"

echo
echo "Demo finished; the temporary repository was $work/repo (removed on exit)."
