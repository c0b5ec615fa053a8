//! The SASL exchange (AMQP 1.0, 5.3), run as an async step on the connection's stream before the
//! AMQP engine takes it over, so that a mechanism may call a service (a token review).
//! Frames are decoded with the broker's bounded codec.
//!
//! Frames are read with exact reads only, so no byte the client pipelines after its last SASL
//! frame (the AMQP header, its Open) is consumed here.

use std::time::Instant;

use enmasse_auth::authenticator::{AuthError, Authenticator, Identity, Step};
use enmasse_types::names::SERVICE_ACCOUNT_LOGIN;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{
    amqp::{
        decode::{Decoder, Descriptor},
        encode::Encoder,
        frame::{self, SASL_FRAME},
    },
    throttle::{Admission, Throttle},
};

/// SASL frame descriptors (AMQP 1.0, 5.3.3).
const MECHANISMS: u64 = 0x40;
const INIT: u64 = 0x41;
const CHALLENGE: u64 = 0x42;
const RESPONSE: u64 = 0x43;
const OUTCOME: u64 = 0x44;

/// SASL outcome codes (AMQP 1.0, 5.3.3.6).
const CODE_OK: u8 = 0;
const CODE_AUTH: u8 = 1;
const CODE_SYS_TEMP: u8 = 4;

/// A SASL frame from the client.
enum Frame {
    /// The mechanism it chose, and its first response.
    Init { mechanism: String, response: Vec<u8> },
    /// Its answer to a challenge.
    Response(Vec<u8>),
}

/// The protocol header that opens a SASL layer.
pub const SASL_HEADER: [u8; 8] = *b"AMQP\x03\x01\x00\x00";
/// The protocol header of plain AMQP.
pub const AMQP_HEADER: [u8; 8] = *b"AMQP\x00\x01\x00\x00";

/// The largest SASL frame read. AMQP 1.0 (5.3.1) keeps SASL frames within 512 bytes, but a
/// Kubernetes service-account token (a JWT of a kilobyte or more) does not fit, and clients send
/// it whole; a few kilobytes are read, no more.
const MAX_SASL_FRAME: usize = 8192;

/// Why the SASL layer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaslError {
    /// Reading or writing the stream failed.
    #[error("failed to exchange SASL frames")]
    Io(#[source] std::io::Error),
    /// The peer sent something that is not a valid SASL frame at this point.
    #[error("malformed SASL frame: {0}")]
    Malformed(String),
    /// The peer did not authenticate.
    #[error("authentication failed")]
    Rejected(#[source] AuthError),
}

/// Runs the server side of SASL after the peer's SASL header was read: offers the mechanisms,
/// steps the exchange through its challenges, and sends the outcome.
/// With `offer_plain` false, PLAIN is neither offered nor accepted: the connection is not encrypted
/// and a password must not cross it in clear.
pub async fn negotiate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    authenticator: &dyn Authenticator,
    offer_plain: bool,
    throttle: &Throttle,
) -> Result<Identity, SaslError> {
    stream.write_all(&SASL_HEADER).await.map_err(SaslError::Io)?;
    let all = authenticator.mechanisms();
    let safe: Vec<&'static str> = all
        .iter()
        .copied()
        .filter(|m| offer_plain || *m != "PLAIN")
        .collect();
    // SASL needs at least one mechanism on offer; with none safe, the exchange still runs so that
    // the client learns the outcome, and PLAIN is refused when chosen.
    let offered = if safe.is_empty() { all } else { safe.clone() };
    write_frame(stream, MECHANISMS, |l| l.field(|e| e.symbols(&offered))).await?;
    let (mechanism, mut response) = match read_frame(stream).await? {
        Frame::Init { mechanism, response } => (mechanism, response),
        Frame::Response(_) => {
            return Err(SaslError::Malformed(
                "expected sasl-init, got sasl-response".into(),
            ));
        }
    };
    // A username that keeps failing takes turns, whichever address its guesses come from.
    let claimed = claimed_username(&mechanism, &response);
    if let Some(user) = &claimed {
        match throttle.admit_user(user, Instant::now()) {
            Admission::After(wait) => tokio::time::sleep(wait).await,
            Admission::Refused => {
                // Refused as a wrong password would be: the client learns nothing more.
                return refuse(stream, AuthError::Credentials(user.clone())).await;
            }
        }
    }
    let result = match authenticator.start(&mechanism) {
        Ok(_) if !offered.contains(&mechanism.as_str()) => Err(AuthError::Mechanism(mechanism.clone())),
        Err(err) => Err(err),
        Ok(mut exchange) => loop {
            match exchange.step(&response).await {
                Ok(Step::Challenge(challenge)) => {
                    write_frame(stream, CHALLENGE, |l| l.field(|e| e.binary(&challenge))).await?;
                    response = match read_frame(stream).await? {
                        Frame::Response(response) => response,
                        Frame::Init { .. } => {
                            return Err(SaslError::Malformed(
                                "expected sasl-response, got sasl-init".into(),
                            ));
                        }
                    };
                }
                Ok(Step::Done(identity, data)) => break Ok((identity, data)),
                Err(err) => break Err(err),
            }
        },
    };
    if let Some(user) = &claimed {
        match &result {
            Ok(_) => throttle.succeeded_user(user),
            Err(AuthError::Unavailable(_)) => {}
            Err(_) => throttle.failed_user(user, Instant::now()),
        }
    }
    let (code, additional_data) = match &result {
        Ok((_, data)) => (CODE_OK, data.clone()),
        Err(AuthError::Unavailable(_)) => (CODE_SYS_TEMP, None),
        Err(_) => (CODE_AUTH, None),
    };
    write_frame(stream, OUTCOME, |l| {
        l.field(|e| e.ubyte(code));
        l.optional(additional_data.as_deref(), Encoder::binary);
    })
    .await?;
    stream.flush().await.map_err(SaslError::Io)?;
    result.map(|(identity, _)| identity).map_err(SaslError::Rejected)
}

/// Answers an exchange that is refused before it began, with the authentication-failed outcome.
async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, error: AuthError) -> Result<Identity, SaslError> {
    write_frame(stream, OUTCOME, |l| l.field(|e| e.ubyte(CODE_AUTH))).await?;
    stream.flush().await.map_err(SaslError::Io)?;
    Err(SaslError::Rejected(error))
}

/// The username a client claims in its initial response, for the throttle: PLAIN's authcid, or
/// the `n=` of SCRAM's client-first message. A service-account login claims no user of its own
/// (its token is the secret), so it claims none here.
fn claimed_username(mechanism: &str, initial: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(initial).ok()?;
    let user = match mechanism {
        "PLAIN" => text.split('\0').nth(1)?,
        m if m.starts_with("SCRAM-") => text
            .splitn(3, ',')
            .nth(2)?
            .strip_prefix("n=")?
            .split(',')
            .next()?,
        _ => return None,
    };
    (!user.is_empty() && user != SERVICE_ACCOUNT_LOGIN).then(|| user.chars().take(256).collect())
}

/// Writes one SASL frame: the descriptor and the list of fields `fields` writes.
async fn write_frame<S: AsyncWrite + Unpin>(
    stream: &mut S,
    descriptor: u64,
    fields: impl FnOnce(&mut crate::amqp::encode::ListEncoder<'_>),
) -> Result<(), SaslError> {
    let mut buf = Vec::new();
    frame::write(
        &mut buf,
        SASL_FRAME,
        0,
        |e| {
            e.descriptor(descriptor);
            let mut list = e.list();
            fields(&mut list);
            list.end();
        },
        &[],
    );
    stream.write_all(&buf).await.map_err(SaslError::Io)
}

async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Frame, SaslError> {
    // The size is checked before anything else is read.
    let size = stream.read_u32().await.map_err(SaslError::Io)? as usize;
    if !(8..=MAX_SASL_FRAME).contains(&size) {
        return Err(SaslError::Malformed(format!(
            "frame size {size} outside 8..={MAX_SASL_FRAME}"
        )));
    }
    let mut bytes = vec![0u8; size];
    bytes[..4].copy_from_slice(&(size as u32).to_be_bytes());
    stream.read_exact(&mut bytes[4..]).await.map_err(SaslError::Io)?;
    let header = frame::Header::parse(&bytes, MAX_SASL_FRAME, SASL_FRAME)
        .map_err(|e| SaslError::Malformed(e.to_string()))?
        .ok_or_else(|| SaslError::Malformed("a short frame header".into()))?;
    decode_frame(&bytes[header.body_offset..]).map_err(|e| SaslError::Malformed(e.to_string()))
}

fn decode_frame(body: &[u8]) -> Result<Frame, crate::amqp::DecodeError> {
    use crate::amqp::DecodeError;
    let mut d = Decoder::new(body);
    let code = match d.descriptor()? {
        Some(Descriptor::Code(code)) => code,
        Some(Descriptor::Symbol("amqp:sasl-init:list")) => INIT,
        Some(Descriptor::Symbol("amqp:sasl-response:list")) => RESPONSE,
        other => {
            return Err(DecodeError::Invalid(format!(
                "expected sasl-init or sasl-response, got {other:?}"
            )));
        }
    };
    let mut f = d.list()?;
    let frame = match code {
        INIT => Frame::Init {
            mechanism: f
                .next(|d| d.symbol().map(str::to_owned))?
                .ok_or_else(|| DecodeError::Invalid("sasl-init without a mechanism".into()))?,
            response: f.next(|d| d.binary().map(<[u8]>::to_vec))?.unwrap_or_default(),
        },
        RESPONSE => Frame::Response(f.next(|d| d.binary().map(<[u8]>::to_vec))?.unwrap_or_default()),
        other => {
            return Err(DecodeError::Invalid(format!(
                "expected sasl-init or sasl-response, got {other:#x}"
            )));
        }
    };
    f.finish()?;
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claimed_username_is_read_from_plain_and_scram_and_not_from_a_token_login() {
        assert_eq!(
            claimed_username("PLAIN", b"\0alice\0secret").as_deref(),
            Some("alice")
        );
        assert_eq!(
            claimed_username("SCRAM-SHA-256", b"n,,n=bob,r=abc").as_deref(),
            Some("bob")
        );
        assert_eq!(claimed_username("PLAIN", b"\0@@serviceaccount@@\0token"), None);
        assert_eq!(claimed_username("ANONYMOUS", b"x"), None);
        assert_eq!(claimed_username("PLAIN", b"garbage"), None);
    }

    #[tokio::test]
    async fn a_garbage_frame_is_a_clean_error_not_a_panic() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let task = tokio::spawn(async move {
            negotiate(
                &mut server,
                &enmasse_auth::authenticator::AcceptAll,
                true,
                &Throttle::default(),
            )
            .await
        });
        let mut header = [0u8; 8];
        client.read_exact(&mut header).await.unwrap();
        assert_eq!(header, SASL_HEADER);
        let size = client.read_u32().await.unwrap();
        let mut mechanisms = vec![0u8; size as usize - 4];
        client.read_exact(&mut mechanisms).await.unwrap();
        client
            .write_all(&[0, 0, 0, 12, 2, 1, 0, 0, 0xde, 0xad, 0xbe, 0xef])
            .await
            .unwrap();
        let result = task.await.unwrap();
        assert!(matches!(result, Err(SaslError::Malformed(_))), "{result:?}");
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_before_it_is_read() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let task = tokio::spawn(async move {
            negotiate(
                &mut server,
                &enmasse_auth::authenticator::AcceptAll,
                true,
                &Throttle::default(),
            )
            .await
        });
        let mut drain = [0u8; 256];
        let _ = client.read(&mut drain).await.unwrap();
        client.write_all(&[0x7f, 0xff, 0xff, 0xff]).await.unwrap();
        assert!(matches!(task.await.unwrap(), Err(SaslError::Malformed(_))));
    }
}
