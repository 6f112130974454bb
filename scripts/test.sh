#!/usr/bin/env bash
# Every check CI runs, in one command: formatting, lints, and all tests (unit, integration,
# end-to-end with the real binaries, git, age and the local databases). Nothing is skipped.
# Installs what the tests need when run as root (CI); otherwise says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

# command → Debian package
declare -A needed=([age]=age [age-keygen]=age [git]=git [ssh-keygen]=openssh-client)
missing=()
for tool in "${!needed[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${needed[$tool]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing ${packages}"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${packages} >/dev/null
  else
    echo "error: missing tools; install the Debian packages: ${packages}" >&2
    exit 1
  fi
fi
for tool in "${!needed[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool is still missing" >&2; exit 1; }
done

if [ "${CI:-}" = "true" ] && [ ! -d ../shared/fixtures ]; then
  echo "error: ../shared/fixtures is missing; CI needs the shared fixtures beside the clone" >&2
  exit 1
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo build --workspace --bins (end-to-end tests run sealops and sealops-controller)"
cargo build --workspace --bins --locked
echo "==> cargo test"
cargo test --workspace --locked
