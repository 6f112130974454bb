//! What the user typed: clap definitions for every command. Validation into library types
//! happens in each command's module.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub mod approve;
pub mod audit;
pub mod check;
pub mod lease;
pub mod policy;

#[derive(Debug, Parser)]
#[command(
    name = "sealops",
    version,
    about = "Git-native secrets management with Vault's discipline",
    long_about = "Seal secret values to cluster public keys (X25519, age format) into YAML manifests \
that are reviewed in pull requests. Key names stay readable; values do not.",
    after_help = "Examples:\n  sealops keygen\n  sealops init --recipient prod=age1...\n  \
sealops seal apps/payments/db --from-literal PASSWORD=s3cret\n  sealops reveal apps/payments/db\n\n\
Exit codes: 0 success, 1 problems found (e.g. verify), 2 error."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every repository command understands.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Repository root (default: found from the current directory, like git).
    #[arg(long, global = true, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Identity file(s) (age-keygen format). Default: $SEALOPS_IDENTITY_FILE, then
    /// ~/.config/sealops/identity.txt.
    #[arg(long, short = 'i', global = true, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate an identity (private key file) and print its public key.
    #[command(
        after_help = "Examples:\n  sealops keygen                 # writes ~/.config/sealops/identity.txt\n  \
sealops keygen -o cluster.key  # prints age1... on stdout"
    )]
    Keygen(KeygenArgs),
    /// Create .sealops/config.yaml and the folders of the repository convention.
    #[command(after_help = "Examples:\n  sealops init --recipient prod=age1...\n  \
sealops init ./infra --recipient age1... --recipient break-glass=age1...")]
    Init(InitArgs),
    /// Create or update secrets/SECRET_PATH.yaml; keys not named stay byte-identical.
    #[command(
        after_help = "Works with public keys only: no identity is needed to seal.\n\n\
Examples:\n  sealops seal apps/payments/db --from-literal PASSWORD=s3cret --plain HOST=db.internal\n  \
sealops seal apps/web --from-env-file .env\n  sealops seal apps/tls --from-file tls.key=./server.key\n  \
printf %s \"$TOKEN\" | sealops seal ci/deploy --stdin TOKEN"
    )]
    Seal(SealArgs),
    /// Set one key (VALUE, or stdin with `-` or when omitted).
    #[command(
        after_help = "Examples:\n  sealops set apps/payments/db PASSWORD s3cret\n  \
printf %s \"$PW\" | sealops set apps/payments/db PASSWORD -\n  sealops set apps/payments/db HOST db.internal --plain"
    )]
    Set(SetArgs),
    /// Remove keys from a manifest.
    #[command(after_help = "Example:\n  sealops unset apps/payments/db OLD_PASSWORD")]
    Unset(UnsetArgs),
    /// Decrypt and print values (needs an identity that is a recipient).
    #[command(
        after_help = "TARGET is a secret path (apps/payments/db), a manifest file, or a \
directory of manifests.\n\nExamples:\n  sealops reveal apps/payments/db\n  sealops reveal apps/payments/db --key PASSWORD\n  \
sealops reveal secrets/apps -o json\n  sealops reveal apps/web -o env > .env"
    )]
    Reveal(RevealArgs),
    /// Edit a manifest's values in $EDITOR; only changed values are sealed again.
    #[command(
        after_help = "The decrypted values go to a private temporary file (mode 0600) that is \
removed on every exit path.\n\nExample:\n  EDITOR=vim sealops edit apps/payments/db"
    )]
    Edit(EditArgs),
    /// List, add or remove recipients in .sealops/config.yaml.
    Recipients(RecipientsArgs),
    /// Re-wrap session keys to the current recipients (needs an identity; values unchanged).
    #[command(
        after_help = "Run after `sealops recipients add`. Only session entries change.\n\n\
Examples:\n  sealops rewrap --all\n  sealops rewrap apps/payments"
    )]
    Rewrap(BulkArgs),
    /// Re-encrypt every value under a fresh session key (e.g. after removing a recipient).
    #[command(
        after_help = "Examples:\n  sealops rotate-data-key --all\n  sealops rotate-data-key apps/payments/db"
    )]
    RotateDataKey(BulkArgs),
    /// Check manifests: structure, schema, recipients, no plaintext; with an identity, open every value.
    #[command(
        after_help = "Opens values only with an identity given by --identity or \
SEALOPS_IDENTITY_FILE.\n\nExamples:\n  sealops verify\n  sealops verify apps/payments secrets/ci/deploy.yaml\n  \
SEALOPS_IDENTITY_FILE=cluster.key sealops verify"
    )]
    Verify(VerifyArgs),
    /// Show a manifest for `git diff`: key-level changes, never plaintext unless revealed.
    #[command(
        after_help = "Used by git as diff.sealops.textconv (see `sealops git-setup`). Without an \
identity, or when the output is not a terminal and --reveal is not given, sealed values show as a \
fingerprint of their ciphertext.\n\nExamples:\n  git diff secrets/\n  sealops textconv secrets/apps/db.yaml --reveal -i cluster.key"
    )]
    Textconv(TextconvArgs),
    /// Key-level three-way merge of manifests (git merge driver; needs no identity).
    #[command(
        after_help = "Configured by `sealops git-setup` as: sealops merge-driver %O %A %B %P\n\n\
Example:\n  sealops merge-driver base.yaml ours.yaml theirs.yaml secrets/apps/db.yaml"
    )]
    MergeDriver(MergeDriverArgs),
    /// Write .gitattributes and the local git config for the textconv and merge drivers.
    #[command(
        after_help = "Idempotent; `sealops init` runs it inside a git repository.\n\nExample:\n  sealops git-setup"
    )]
    GitSetup,
    /// Pre-commit check: refuse staged plaintext secrets, private keys and broken manifests.
    #[command(
        after_help = "Example (.git/hooks/pre-commit):\n  #!/bin/sh\n  exec sealops precommit"
    )]
    Precommit,
    /// Convert SOPS files (age) into sealed manifests; plaintext never touches the disk.
    #[command(
        after_help = "Nested keys are flattened with the reversible rule of docs/sops.md \
(a.b.0 for a: {b: [...]}).\n\nExamples:\n  sealops import-sops secrets.enc.yaml --to apps/payments/db -i sops-age.key\n  \
sealops import-sops old/*.yaml --to legacy -i sops-age.key"
    )]
    ImportSops(ImportSopsArgs),
    /// Write a manifest as a SOPS-compatible age file (for sops and Flux).
    #[command(
        after_help = "Encrypted to the recipients of .sealops/config.yaml.\n\nExamples:\n  \
sealops export-sops apps/payments/db -o db.enc.yaml\n  sealops export-sops apps/web --format dotenv > web.enc.env"
    )]
    ExportSops(ExportSopsArgs),
    /// Vault-syntax ACL policies.
    Policy(policy::PolicyArgs),
    /// Pull-request check: signatures, authority, approvals, plaintext in any commit, and the plan.
    #[command(
        after_help = "Without --trusted-signers, signers come from .sealops/allowed_signers as \
committed at BASE: in CI, BASE must be the protected target branch. Exit 1 on any violation.\n\n\
Examples:\n  sealops check --base origin/main\n  sealops check --base origin/main --head HEAD -o markdown > comment.md\n  \
sealops check --base origin/main -o sarif > sealops.sarif\n  sealops check --base main -o json --trusted-signers /etc/sealops/allowed_signers"
    )]
    Check(check::CheckArgs),
    /// Sign an approval of exact contents (blob ids) into .sealops/approvals/.
    #[command(
        after_help = "-i KEY is the approver's SSH private key; without it, the one ssh-agent key that \
.sealops/allowed_signers lets approve signs. Statements name this repository (repository_id) and \
bind content, not commits: they survive rebase and squash-merge, and count for \
trust.approval_max_age.\n\n\
Examples:\n  sealops approve -i ~/.ssh/id_ed25519 policies/payments.hcl\n  \
sealops approve -i ~/.ssh/id_ed25519 --range origin/main..HEAD\n  git add .sealops/approvals && git commit -S -m 'approve'"
    )]
    Approve(approve::ApproveArgs),
    /// The audit trail on the audit branch: verify it, list records, fingerprint a value.
    #[command(
        after_help = "verify exits 1 and names the first broken line when a record was edited, removed, \
reordered, or the last batch dropped.\n\n\
Examples:\n  git fetch origin sealops/audit && sealops audit verify\n  \
sealops audit log --since 2026-11-28T00:00:00Z --path 'apps/payments/*' --event output-written\n  \
sealops audit fingerprint apps/payments/db DB_PASSWORD --audit-key /var/lib/sealops/audit.key -i cluster.key"
    )]
    Audit(audit::AuditArgs),
    /// Leases of dynamic credentials held by the local controller: list, renew, revoke.
    #[command(
        after_help = "Talks to the controller on this machine through its loopback API: the URL and \
token file come from DIR/api.json (--state-dir, default /var/lib/sealops), or from --api-url and \
--token-file. The token file is readable by the controller's user only.\n\n\
Examples:\n  sealops lease list\n  sealops lease list --prefix main-pg/ --json\n  \
sealops lease renew main-pg/creds/app/v-app-x1y2\n  sealops lease revoke --prefix main-pg/creds/app/"
    )]
    Lease(lease::LeaseArgs),
    /// Rotate a static role's password (or a backend's admin password) now, through the local
    /// controller.
    #[command(
        after_help = "The controller changes the password with its write-ahead protocol and \
writes the outputs that hold it. `<backend>/rotate-root` rotates the backend's admin password: \
afterwards only the controller knows it (sealed in its state directory). Located like \
`sealops lease`.\n\n\
Examples:\n  sealops rotate main-pg/static-creds/app\n  sealops rotate main-pg/rotate-root"
    )]
    Rotate(lease::RotateArgs),
    /// Approvals of a range: what is approved and what is missing.
    #[command(after_help = "Example:\n  sealops approvals status --base origin/main")]
    Approvals(approve::ApprovalsArgs),
    /// Print or write the JSON Schemas of the file formats.
    #[command(
        after_help = "Examples:\n  sealops schema --out schemas/\n  sealops schema --check schemas/"
    )]
    Schema(SchemaArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  sealops completions bash > /etc/bash_completion.d/sealops\n  \
sealops completions zsh > ~/.zfunc/_sealops"
    )]
    Completions(CompletionsArgs),
    /// Print the man page, or write one per command into a directory.
    #[command(
        after_help = "Examples:\n  sealops man | man -l -\n  sealops man --out /usr/local/share/man/man1"
    )]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the identity (mode 0600; never overwritten).
    /// Default: ~/.config/sealops/identity.txt.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to set up (default: the current directory).
    pub dir: Option<PathBuf>,
    /// A recipient: `age1…` or `NAME=age1…` (repeatable).
    #[arg(long, short = 'r', value_name = "[NAME=]AGE1")]
    pub recipient: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SealArgs {
    /// The secret's path below secrets/ (e.g. apps/payments/db).
    pub secret_path: String,
    /// KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub from_literal: Vec<String>,
    /// KEY=FILE: the file's bytes become the value (repeatable).
    #[arg(long, value_name = "KEY=FILE")]
    pub from_file: Vec<String>,
    /// Every KEY=VALUE of a dotenv file.
    #[arg(long, value_name = "FILE")]
    pub from_env_file: Option<PathBuf>,
    /// Read KEY's value from standard input (bytes as given).
    #[arg(long, value_name = "KEY")]
    pub stdin: Option<String>,
    /// KEY=VALUE stored in clear under `plain:` (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub plain: Vec<String>,
    /// Scope of a new manifest: strict (default), under:<dir> or repository.
    #[arg(long)]
    pub scope: Option<String>,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    pub secret_path: String,
    pub key: String,
    /// The value; `-` or omitted reads standard input (hidden prompt on a terminal).
    pub value: Option<String>,
    /// Store the value in clear under `plain:`.
    #[arg(long)]
    pub plain: bool,
}

#[derive(Debug, Args)]
pub struct UnsetArgs {
    pub secret_path: String,
    #[arg(required = true)]
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum RevealFormat {
    Yaml,
    Json,
    Env,
}

#[derive(Debug, Args)]
pub struct RevealArgs {
    /// Secret path, manifest file or directory.
    pub target: String,
    /// Print only this key's value, as raw bytes.
    #[arg(long, short = 'k')]
    pub key: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "yaml")]
    pub output: RevealFormat,
    /// SOPS files: open even when the MAC does not verify.
    #[arg(long)]
    pub ignore_mac: bool,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    pub secret_path: String,
}

#[derive(Debug, Args)]
pub struct RecipientsArgs {
    #[command(subcommand)]
    pub command: RecipientsCommand,
}

#[derive(Debug, Subcommand)]
pub enum RecipientsCommand {
    /// List recipients with their key ids.
    List,
    /// Add a recipient; then run `sealops rewrap --all`.
    #[command(
        after_help = "Example:\n  sealops recipients add age1... --name prod-eu --role cluster && sealops rewrap --all"
    )]
    Add {
        /// The public key, age1…
        key: String,
        /// A short name (default: recipient-N).
        #[arg(long)]
        name: Option<String>,
        /// cluster, break-glass or person.
        #[arg(long)]
        role: Option<String>,
    },
    /// Remove a recipient by name or key; then run `sealops rotate-data-key --all`.
    #[command(
        after_help = "Example:\n  sealops recipients remove old-cluster && sealops rotate-data-key --all"
    )]
    Remove {
        /// Name or age1… key.
        recipient: String,
    },
}

#[derive(Debug, Args)]
pub struct BulkArgs {
    /// Secret paths, manifest files or directories.
    pub paths: Vec<String>,
    /// Every manifest in the repository.
    #[arg(long, conflicts_with = "paths")]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Secret paths, manifest files or directories (default: every manifest).
    pub paths: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImportSopsArgs {
    /// SOPS files (YAML, JSON, dotenv, INI or binary store) encrypted with age.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Secret path (one file) or directory (several files); default: each file's name.
    #[arg(long, value_name = "SECRET_PATH")]
    pub to: Option<String>,
    /// Import even when the SOPS MAC does not verify.
    #[arg(long)]
    pub ignore_mac: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SopsOutputFormat {
    Yaml,
    Json,
    Dotenv,
}

#[derive(Debug, Args)]
pub struct ExportSopsArgs {
    pub secret_path: String,
    /// Write to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// SOPS store to write.
    #[arg(long, value_enum, default_value = "yaml")]
    pub format: SopsOutputFormat,
}

#[derive(Debug, Args)]
pub struct TextconvArgs {
    /// The manifest file (git passes a temporary copy).
    pub file: PathBuf,
    /// Show decrypted values even when the output is not a terminal (needs an identity).
    #[arg(long)]
    pub reveal: bool,
}

#[derive(Debug, Args)]
pub struct MergeDriverArgs {
    /// %O: the common ancestor's version.
    pub base: PathBuf,
    /// %A: our version; the merge result is written here.
    pub ours: PathBuf,
    /// %B: their version.
    pub theirs: PathBuf,
    /// %P: the path in the repository, for messages.
    pub path: Option<String>,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Write the schema files into DIR.
    #[arg(long, value_name = "DIR", conflicts_with = "check")]
    pub out: Option<PathBuf>,
    /// Fail (exit 1) when the files in DIR differ from the generated schemas.
    #[arg(long, value_name = "DIR")]
    pub check: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write sealops.1 and one page per command into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}
