//! SSHSIG signatures (OpenSSH's `PROTOCOL.sshsig`, as `ssh-keygen -Y sign` makes them and git
//! stores them in commits), made and checked in process with the `ssh-key` crate.
//!
//! Use [`SigningKey`] to sign, [`verify_for_principals`] to learn who signed (like
//! `ssh-keygen -Y find-principals` + `-Y verify`), [`verify_as_principal`] to check a claimed
//! signer (like `ssh-keygen -Y verify -I principal`). Supported key types: Ed25519 and ECDSA
//! P-256 and RSA (SHA-2) (plain keys; security-key signatures are reported as unsupported).

use std::fmt;
use std::path::Path;

use ssh_key::public::KeyData;
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

use super::allowed_signers::{AllowedSigners, KeyRejection, fingerprint};

/// A key that signs: an unencrypted OpenSSH private key file (as `ssh-keygen -N ""` writes it),
/// or a key held by ssh-agent.
pub struct SigningKey {
    key: KeySource,
    public: PublicKey,
    source: String,
}

enum KeySource {
    File(Box<PrivateKey>),
    /// The agent's socket; the agent signs, the private key never enters this process.
    Agent(std::path::PathBuf),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("fingerprint", &fingerprint(self.public.key_data()))
            .field("source", &self.source)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Errors loading a signing key or signing with it.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("cannot read SSH private key {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{source_name}: not an OpenSSH private key ({problem}); expected a file made by `ssh-keygen -t ed25519`"
    )]
    Malformed {
        source_name: String,
        problem: String,
    },
    #[error(
        "{source_name}: the private key is passphrase-protected; sealops signs with unencrypted key files only (use a dedicated signing key, or remove the passphrase with `ssh-keygen -p -f {source_name}`)"
    )]
    Encrypted { source_name: String },
    #[error("{source_name}: cannot sign with this key: {problem}")]
    Sign {
        source_name: String,
        problem: String,
    },
}

impl SigningKey {
    /// Loads a private key file (`-i KEY`).
    pub fn load(path: &Path) -> Result<Self, SigningError> {
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            SigningError::Read {
                path: path.display().to_string(),
                source,
            }
        })?);
        Self::from_openssh(&text, &path.display().to_string())
    }

    /// Parses OpenSSH private key text; `source` names it in errors.
    pub fn from_openssh(text: &str, source: &str) -> Result<Self, SigningError> {
        let key = PrivateKey::from_openssh(text).map_err(|e| SigningError::Malformed {
            source_name: source.to_owned(),
            problem: e.to_string(),
        })?;
        if key.is_encrypted() {
            return Err(SigningError::Encrypted {
                source_name: source.to_owned(),
            });
        }
        Ok(Self {
            public: key.public_key().clone(),
            key: KeySource::File(Box::new(key)),
            source: source.to_owned(),
        })
    }

    /// The keys an ssh-agent holds (`$SSH_AUTH_SOCK`), each able to sign through the agent.
    pub fn from_agent(socket: &Path) -> Result<Vec<Self>, SigningError> {
        let source = format!("ssh-agent ({})", socket.display());
        let failed = |problem: String| SigningError::Sign {
            source_name: source.clone(),
            problem,
        };
        let mut client =
            ssh_agent_client_rs::Client::connect(socket).map_err(|e| failed(e.to_string()))?;
        let identities = client
            .list_all_identities()
            .map_err(|e| failed(e.to_string()))?;
        Ok(identities
            .into_iter()
            .filter_map(|identity| match identity {
                ssh_agent_client_rs::Identity::PublicKey(key) => Some(key.into_owned()),
                ssh_agent_client_rs::Identity::Certificate(_) => None,
            })
            .map(|public| Self {
                key: KeySource::Agent(socket.to_owned()),
                source: format!("{source} key {}", fingerprint(public.key_data())),
                public,
            })
            .collect())
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// `SHA256:…` fingerprint of the public key.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.public.key_data())
    }

    /// Signs `message` in `namespace` with SHA-512 (as `ssh-keygen -Y sign` does), returning the
    /// armored `-----BEGIN SSH SIGNATURE-----` text with a trailing newline.
    pub fn sign(&self, namespace: &str, message: &[u8]) -> Result<String, SigningError> {
        let failed = |e: ssh_key::Error| SigningError::Sign {
            source_name: self.source.clone(),
            problem: e.to_string(),
        };
        let signature = match &self.key {
            KeySource::File(key) => key
                .sign(namespace, HashAlg::Sha512, message)
                .map_err(failed)?,
            KeySource::Agent(socket) => {
                let agent_failed = |problem: String| SigningError::Sign {
                    source_name: self.source.clone(),
                    problem,
                };
                // The agent signs the SSHSIG "signed data" blob, as `ssh-keygen -Y sign` asks it to.
                let data =
                    SshSig::signed_data(namespace, HashAlg::Sha512, message).map_err(failed)?;
                let mut client = ssh_agent_client_rs::Client::connect(socket)
                    .map_err(|e| agent_failed(e.to_string()))?;
                let raw = client
                    .sign(&self.public, &data)
                    .map_err(|e| agent_failed(e.to_string()))?;
                SshSig::new(
                    self.public.key_data().clone(),
                    namespace,
                    HashAlg::Sha512,
                    raw,
                )
                .map_err(failed)?
            }
        };
        let mut armored = signature.to_pem(LineEnding::LF).map_err(failed)?;
        if !armored.ends_with('\n') {
            armored.push('\n');
        }
        Ok(armored)
    }
}

/// Why a signature does not establish a signer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureRejection {
    #[error("not a valid SSH signature: {problem}")]
    Malformed { problem: String },
    #[error("signature is for namespace {found:?}, expected {expected:?}")]
    WrongNamespace { expected: String, found: String },
    #[error(
        "signature algorithm {algorithm} is not supported (sealops verifies Ed25519 and ECDSA P-256)"
    )]
    Unsupported { algorithm: String },
    #[error("signature by key {fingerprint} does not match the signed content")]
    BadSignature { fingerprint: String },
    #[error(transparent)]
    Key(#[from] KeyRejection),
}

/// A signature that verified cryptographically, with the key that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSignature {
    pub key: KeyData,
    /// `SHA256:…` fingerprint of `key`.
    pub fingerprint: String,
}

/// Checks that `armored` is a valid SSHSIG over `message` in `namespace`, by whatever key: the
/// key still has to be looked up in an allowed-signers file.
pub fn verify_signature(
    armored: &[u8],
    namespace: &str,
    message: &[u8],
) -> Result<ValidSignature, SignatureRejection> {
    let signature = SshSig::from_pem(armored).map_err(|e| SignatureRejection::Malformed {
        problem: e.to_string(),
    })?;
    if signature.namespace() != namespace {
        return Err(SignatureRejection::WrongNamespace {
            expected: namespace.to_owned(),
            found: signature.namespace().to_owned(),
        });
    }
    let key = signature.public_key().clone();
    let print = fingerprint(&key);
    match PublicKey::from(key.clone()).verify(namespace, message, &signature) {
        Ok(()) => Ok(ValidSignature {
            key,
            fingerprint: print,
        }),
        Err(ssh_key::Error::AlgorithmUnsupported { algorithm }) => {
            Err(SignatureRejection::Unsupported {
                algorithm: algorithm.to_string(),
            })
        }
        Err(ssh_key::Error::AlgorithmUnknown) => Err(SignatureRejection::Unsupported {
            algorithm: key.algorithm().to_string(),
        }),
        Err(_) => Err(SignatureRejection::BadSignature { fingerprint: print }),
    }
}

/// A signature by a key the allowed-signers file accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBy {
    /// The principals the key may sign as (see [`AllowedSigners::principals_for_key`]).
    pub principals: Vec<String>,
    /// `SHA256:…` fingerprint of the signing key.
    pub fingerprint: String,
}

/// Verifies `armored` over `message` in `namespace` and returns which principals signed, with
/// the key checked against `signers` at `time` (Unix seconds).
pub fn verify_for_principals(
    armored: &[u8],
    namespace: &str,
    message: &[u8],
    signers: &AllowedSigners,
    time: i64,
) -> Result<SignedBy, SignatureRejection> {
    let valid = verify_signature(armored, namespace, message)?;
    let principals = signers.principals_for_key(&valid.key, namespace, time)?;
    Ok(SignedBy {
        principals,
        fingerprint: valid.fingerprint,
    })
}

/// Verifies `armored` over `message` in `namespace` as signed by `principal`, the key checked
/// against `signers` at `time` (Unix seconds).
pub fn verify_as_principal(
    armored: &[u8],
    namespace: &str,
    message: &[u8],
    signers: &AllowedSigners,
    principal: &str,
    time: i64,
) -> Result<ValidSignature, SignatureRejection> {
    let valid = verify_signature(armored, namespace, message)?;
    signers.check_principal(principal, &valid.key, namespace, time)?;
    Ok(valid)
}
