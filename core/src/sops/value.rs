//! One SOPS value: `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`.
//!
//! AES-256-GCM with a 32-byte IV (what SOPS writes; most AES-GCM APIs refuse that size) and the
//! value's key path as associated data. The parser accepts exactly what SOPS writes and returns
//! an error, never a panic, for anything else.

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use zeroize::Zeroizing;

use super::DataKey;

/// AES-256-GCM with SOPS's 32-byte nonce.
type SopsCipher = AesGcm<Aes256, U32>;

const IV_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// The `type:` tag of a SOPS value: how its plaintext bytes are read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    Str,
    Int,
    Float,
    Bool,
    Bytes,
    Comment,
}

impl ValueType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Str => "str",
            Self::Int => "int",
            Self::Float => "float",
            Self::Bool => "bool",
            Self::Bytes => "bytes",
            Self::Comment => "comment",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "str" => Self::Str,
            // SOPS writes `int` for Go ints and `int64` for explicit 64-bit ints; both are i64 here.
            "int" | "int64" => Self::Int,
            "float" => Self::Float,
            "bool" => Self::Bool,
            "bytes" => Self::Bytes,
            "comment" => Self::Comment,
            _ => return None,
        })
    }
}

/// A parsed `ENC[...]` string (still encrypted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedValue {
    pub data: Vec<u8>,
    pub iv: Vec<u8>,
    pub tag: Vec<u8>,
    pub value_type: ValueType,
}

/// Why an `ENC[...]` string is not a valid SOPS value. Never holds plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("not a SOPS value: expected ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]")]
    NotSops,
    #[error("the {field} field is not valid standard base64")]
    Base64 { field: &'static str },
    #[error("the iv is {0} bytes; SOPS values use a 32-byte iv")]
    IvLength(usize),
    #[error("the tag is {0} bytes; AES-GCM tags are 16 bytes")]
    TagLength(usize),
    #[error("unknown value type {0:?} (expected str, int, int64, float, bool, bytes or comment)")]
    UnknownType(String),
    #[error("authentication failed: the value, its key path or the data key was altered")]
    Authentication,
    #[error("the decrypted {0} value does not parse as that type")]
    BadPlaintext(&'static str),
}

/// Whether `text` looks like a SOPS value (it may still be malformed).
pub fn is_sops_value(text: &str) -> bool {
    text.starts_with("ENC[AES256_GCM,") && text.ends_with(']')
}

impl EncryptedValue {
    /// Parses `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`.
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let inner = text
            .strip_prefix("ENC[AES256_GCM,")
            .and_then(|rest| rest.strip_suffix(']'))
            .ok_or(ValueError::NotSops)?;
        let mut fields = inner.split(',');
        let mut take = |name: &str| {
            fields
                .next()
                .and_then(|field| field.strip_prefix(name))
                .and_then(|field| field.strip_prefix(':'))
                .ok_or(ValueError::NotSops)
        };
        let (data, iv, tag, kind) = (take("data")?, take("iv")?, take("tag")?, take("type")?);
        if fields.next().is_some() {
            return Err(ValueError::NotSops);
        }
        let decode = |field: &'static str, text: &str| {
            STANDARD
                .decode(text)
                .map_err(|_| ValueError::Base64 { field })
        };
        let value = Self {
            data: decode("data", data)?,
            iv: decode("iv", iv)?,
            tag: decode("tag", tag)?,
            value_type: ValueType::parse(kind)
                .ok_or_else(|| ValueError::UnknownType(kind.to_owned()))?,
        };
        if value.iv.len() != IV_LEN {
            return Err(ValueError::IvLength(value.iv.len()));
        }
        if value.tag.len() != TAG_LEN {
            return Err(ValueError::TagLength(value.tag.len()));
        }
        Ok(value)
    }

    /// The `ENC[...]` text of this value.
    pub fn format(&self) -> String {
        format!(
            "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{}]",
            STANDARD.encode(&self.data),
            STANDARD.encode(&self.iv),
            STANDARD.encode(&self.tag),
            self.value_type.as_str()
        )
    }

    /// Decrypts with the data key and the value's associated data (its key path).
    pub fn decrypt(&self, key: &DataKey, aad: &str) -> Result<Zeroizing<Vec<u8>>, ValueError> {
        let cipher = SopsCipher::new(key.expose().into());
        let mut sealed = Vec::with_capacity(self.data.len() + TAG_LEN);
        sealed.extend_from_slice(&self.data);
        sealed.extend_from_slice(&self.tag);
        cipher
            .decrypt(
                Nonce::<U32>::from_slice(&self.iv),
                Payload {
                    msg: &sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| ValueError::Authentication)
    }

    /// Encrypts `plaintext` under a fresh random IV.
    pub fn encrypt(plaintext: &[u8], value_type: ValueType, key: &DataKey, aad: &str) -> Self {
        let mut iv = vec![0u8; IV_LEN];
        rand::rngs::OsRng.fill_bytes(&mut iv);
        let cipher = SopsCipher::new(key.expose().into());
        let mut sealed = cipher
            .encrypt(
                Nonce::<U32>::from_slice(&iv),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let tag = sealed.split_off(sealed.len() - TAG_LEN);
        Self {
            data: sealed,
            iv,
            tag,
            value_type,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DataKey {
        DataKey::from_bytes([7u8; 32])
    }

    #[test]
    fn encrypt_then_parse_then_decrypt() {
        let value = EncryptedValue::encrypt(b"hunter2", ValueType::Str, &key(), "a:b:");
        let text = value.format();
        let parsed = EncryptedValue::parse(&text).expect("parses");
        assert_eq!(parsed, value);
        assert_eq!(
            parsed.decrypt(&key(), "a:b:").unwrap().as_slice(),
            b"hunter2"
        );
        assert_eq!(
            parsed.decrypt(&key(), "a:c:"),
            Err(ValueError::Authentication)
        );
    }

    #[test]
    fn malformed_values_are_errors() {
        assert_eq!(EncryptedValue::parse("hello"), Err(ValueError::NotSops));
        assert_eq!(
            EncryptedValue::parse("ENC[AES256_GCM,data:!!,iv:AA==,tag:AA==,type:str]"),
            Err(ValueError::Base64 { field: "data" })
        );
        assert_eq!(
            EncryptedValue::parse("ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]"),
            Err(ValueError::IvLength(1))
        );
    }
}
