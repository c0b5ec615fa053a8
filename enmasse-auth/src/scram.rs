//! SCRAM-SHA-256 (RFC 5802, RFC 7677): a password is kept only as a salt, an iteration count and
//! two keys derived from it. The same keys check a SASL PLAIN password and run the SCRAM exchange,
//! in which the password never crosses the wire.

use std::num::NonZeroU32;

use enmasse_types::{base64, broker_config::PasswordKeys};
use ring::{digest, hmac, pbkdf2};

/// The SASL name of the mechanism.
pub const MECHANISM: &str = "SCRAM-SHA-256";

/// PBKDF2 iterations for new credentials (RFC 7677 asks for at least 4096).
pub const DEFAULT_ITERATIONS: NonZeroU32 = match NonZeroU32::new(4096) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};

/// The most iterations a credential may ask for, so that a stored value cannot stall the broker.
pub const MAX_ITERATIONS: u32 = 1_000_000;

const KEY_LEN: usize = 32;

/// A password, as SCRAM keeps it. `Debug` shows none of the keys.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: NonZeroU32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: [u8; KEY_LEN],
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: [u8; KEY_LEN],
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; KEY_LEN] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

fn sha256(data: &[u8]) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

/// Compares without stopping at the first difference, so timing reveals nothing.
pub(crate) fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl ScramCredential {
    /// Derives the credential of `password` with this salt and iteration count.
    pub fn derive(password: &[u8], salt: &[u8], iterations: NonZeroU32) -> Self {
        let salted = salted_password(password, salt, iterations);
        Self {
            salt: salt.to_vec(),
            iterations,
            stored_key: sha256(&hmac_sha256(&salted, b"Client Key")),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// The credential that `keys` (as a broker config carries them) describe.
    pub fn from_keys(keys: &PasswordKeys) -> Result<Self, InvalidKeys> {
        let key = |field: &'static str, text: &str| -> Result<[u8; KEY_LEN], InvalidKeys> {
            base64::decode(text)
                .and_then(|bytes| <[u8; KEY_LEN]>::try_from(bytes).ok())
                .ok_or(InvalidKeys::Key(field))
        };
        let iterations = NonZeroU32::new(keys.iterations)
            .filter(|n| n.get() <= MAX_ITERATIONS)
            .ok_or(InvalidKeys::Iterations(keys.iterations))?;
        let salt = base64::decode(&keys.salt)
            .filter(|salt| !salt.is_empty())
            .ok_or(InvalidKeys::Salt)?;
        Ok(Self {
            salt,
            iterations,
            stored_key: key("storedKey", &keys.stored_key)?,
            server_key: key("serverKey", &keys.server_key)?,
        })
    }

    /// The keys to put in a broker config.
    pub fn to_keys(&self) -> PasswordKeys {
        PasswordKeys {
            salt: base64::encode(&self.salt),
            iterations: self.iterations.get(),
            stored_key: base64::encode(&self.stored_key),
            server_key: base64::encode(&self.server_key),
        }
    }

    /// Whether `password` is the one this credential was derived from (for SASL PLAIN).
    pub fn verify_password(&self, password: &[u8]) -> bool {
        let salted = salted_password(password, &self.salt, self.iterations);
        let stored_key = sha256(&hmac_sha256(&salted, b"Client Key"));
        equal_in_constant_time(&stored_key, &self.stored_key)
    }
}

fn salted_password(password: &[u8], salt: &[u8], iterations: NonZeroU32) -> [u8; KEY_LEN] {
    let mut salted = [0u8; KEY_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        password,
        &mut salted,
    );
    salted
}

/// Why a broker config's password keys cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidKeys {
    /// The salt is missing or not base64.
    #[error("the salt must be non-empty base64")]
    Salt,
    /// A key is not base64 of 32 bytes.
    #[error("{0} must be base64 of 32 bytes")]
    Key(&'static str),
    /// Zero, or more than the broker accepts.
    #[error("iterations must be between 1 and {MAX_ITERATIONS}, not {0}")]
    Iterations(u32),
}

/// Why a SCRAM exchange failed. The peer only learns that authentication failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScramError {
    /// A message does not follow RFC 5802's grammar.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The client asked for channel binding, which this server does not offer.
    #[error("channel binding is not supported")]
    ChannelBinding,
    /// The final message does not continue the exchange (nonce or binding changed).
    #[error("the client's final message does not match the exchange")]
    Mismatch,
    /// Unknown user or wrong password (deliberately not told apart).
    #[error("invalid credentials for {0:?}")]
    Credentials(String),
    /// A message arrived out of turn.
    #[error("unexpected SCRAM message")]
    OutOfTurn,
}

/// The server side of one SCRAM-SHA-256 exchange.
#[derive(Debug)]
pub struct ScramServer {
    state: State,
}

#[derive(Debug)]
enum State {
    Initial {
        server_nonce: String,
    },
    SentFirst {
        username: String,
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        credential: Option<ScramCredential>,
    },
    Done,
}

impl ScramServer {
    /// An exchange that will add `server_nonce` (random, printable, no `,`) to the client's nonce.
    pub fn new(server_nonce: String) -> Self {
        Self {
            state: State::Initial { server_nonce },
        }
    }

    /// Whether the client-first message was handled.
    pub fn is_started(&self) -> bool {
        !matches!(self.state, State::Initial { .. })
    }

    /// Handles the client-first message; `lookup` finds the user's credential. Answers the
    /// server-first message. An unknown user gets a plausible answer and fails at the end, so the
    /// exchange does not tell which users exist.
    pub fn client_first(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, ScramError> {
        let State::Initial { server_nonce } = std::mem::replace(&mut self.state, State::Done) else {
            return Err(ScramError::OutOfTurn);
        };
        let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (gs2_header, client_first_bare) = split_gs2(text)?;
        let mut fields = client_first_bare.split(',');
        let username = decode_name(field(fields.next(), 'n')?)?;
        let client_nonce = field(fields.next(), 'r')?;
        if client_nonce.is_empty() || client_nonce.contains(',') {
            return Err(ScramError::Malformed("bad client nonce"));
        }
        let credential = lookup(&username);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            // A salt that is the same for the same unknown name, like a real one would be.
            None => (sha256(username.as_bytes())[..16].to_vec(), DEFAULT_ITERATIONS),
        };
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!("r={nonce},s={},i={iterations}", base64::encode(&salt));
        self.state = State::SentFirst {
            username,
            gs2_header: gs2_header.to_owned(),
            client_first_bare: client_first_bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
            credential,
        };
        Ok(server_first.into_bytes())
    }

    /// Handles the client-final message: checks the proof, and answers the server-final message
    /// with the authenticated username.
    pub fn client_final(&mut self, message: &[u8]) -> Result<(String, Vec<u8>), ScramError> {
        let State::SentFirst {
            username,
            gs2_header,
            client_first_bare,
            server_first,
            nonce,
            credential,
        } = std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(ScramError::OutOfTurn);
        };
        let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or(ScramError::Malformed("no proof"))?;
        let mut fields = without_proof.split(',');
        let binding = field(fields.next(), 'c')?;
        let final_nonce = field(fields.next(), 'r')?;
        if base64::decode(binding).as_deref() != Some(gs2_header.as_bytes()) || final_nonce != nonce {
            return Err(ScramError::Mismatch);
        }
        let proof = base64::decode(proof).ok_or(ScramError::Malformed("proof is not base64"))?;
        let Some(credential) = credential else {
            return Err(ScramError::Credentials(username));
        };
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = hmac_sha256(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != KEY_LEN {
            return Err(ScramError::Credentials(username));
        }
        let client_key: Vec<u8> = proof.iter().zip(client_signature).map(|(p, s)| p ^ s).collect();
        if !equal_in_constant_time(&sha256(&client_key), &credential.stored_key) {
            return Err(ScramError::Credentials(username));
        }
        let server_signature = hmac_sha256(&credential.server_key, auth_message.as_bytes());
        Ok((
            username,
            format!("v={}", base64::encode(&server_signature)).into_bytes(),
        ))
    }
}

/// Splits `gs2-header client-first-bare`; refuses channel binding.
fn split_gs2(text: &str) -> Result<(&str, &str), ScramError> {
    let binding = text.get(..1).ok_or(ScramError::Malformed("empty message"))?;
    match binding {
        "n" | "y" => {}
        "p" => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed("bad GS2 header")),
    }
    // gs2-header = cbind-flag "," [ authzid ] ","
    let after_flag = text.get(2..).ok_or(ScramError::Malformed("bad GS2 header"))?;
    let (authzid, bare) = after_flag
        .split_once(',')
        .ok_or(ScramError::Malformed("bad GS2 header"))?;
    if !authzid.is_empty() && !authzid.starts_with("a=") {
        return Err(ScramError::Malformed("bad authzid"));
    }
    let header_len = text.len() - bare.len();
    Ok((&text[..header_len], bare))
}

/// The value of `key=value`, when the key is the expected one.
fn field(part: Option<&str>, key: char) -> Result<&str, ScramError> {
    let part = part.ok_or(ScramError::Malformed("missing field"))?;
    let mut chars = part.chars();
    if chars.next() != Some(key) || chars.next() != Some('=') {
        return Err(ScramError::Malformed("unexpected field"));
    }
    Ok(&part[2..])
}

/// Decodes a saslname (`=2C` is `,`, `=3D` is `=`).
fn decode_name(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in username")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(ScramError::Malformed("empty username"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
