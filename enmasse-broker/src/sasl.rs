//! The SASL exchange, run as our own async step on the connection's stream before the AMQP
//! connection is accepted (fe2o3-amqp's acceptor-side SASL is synchronous and cannot hand the
//! identity on).
//!
//! Frames are read with exact reads only, so no byte the client pipelines after its last SASL
//! frame (the AMQP header, its Open) is consumed here.

use enmasse_auth::authenticator::{AuthError, Authenticator, Identity, Step};
use fe2o3_amqp::{
    frames::sasl::Frame,
    types::{
        primitives::{Array, Binary, Symbol},
        sasl::{SaslChallenge, SaslCode, SaslMechanisms, SaslOutcome, SaslResponse},
    },
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The protocol header that opens a SASL layer.
pub const SASL_HEADER: [u8; 8] = *b"AMQP\x03\x01\x00\x00";
/// The protocol header of plain AMQP.
pub const AMQP_HEADER: [u8; 8] = *b"AMQP\x00\x01\x00\x00";

/// SASL frames may not be larger than the smallest max-frame-size (AMQP 1.0, 5.3.1).
const MAX_SASL_FRAME: usize = 512;

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
    let mechanisms: Vec<Symbol> = offered.iter().copied().map(Symbol::from).collect();
    write_frame(
        stream,
        &Frame::Mechanisms(SaslMechanisms {
            sasl_server_mechanisms: Array(mechanisms),
        }),
    )
    .await?;
    let init = match read_frame(stream).await? {
        Frame::Init(init) => init,
        other => return Err(SaslError::Malformed(format!("expected sasl-init, got {other:?}"))),
    };
    let mut response = init.initial_response.map(|r| r.into_vec()).unwrap_or_default();
    let result = match authenticator.start(init.mechanism.as_str()) {
        Ok(_) if !offered.contains(&init.mechanism.as_str()) => {
            Err(AuthError::Mechanism(init.mechanism.0.clone()))
        }
        Err(err) => Err(err),
        Ok(mut exchange) => loop {
            match exchange.step(&response).await {
                Ok(Step::Challenge(challenge)) => {
                    let frame = Frame::Challenge(SaslChallenge {
                        challenge: Binary::from(challenge),
                    });
                    write_frame(stream, &frame).await?;
                    response = match read_frame(stream).await? {
                        Frame::Response(SaslResponse { response }) => response.into_vec(),
                        other => {
                            return Err(SaslError::Malformed(format!(
                                "expected sasl-response, got {other:?}"
                            )));
                        }
                    };
                }
                Ok(Step::Done(identity, data)) => break Ok((identity, data)),
                Err(err) => break Err(err),
            }
        },
    };
    let (code, additional_data) = match &result {
        Ok((_, data)) => (SaslCode::Ok, data.clone().map(Binary::from)),
        Err(AuthError::Unavailable(_)) => (SaslCode::SysTemp, None),
        Err(_) => (SaslCode::Auth, None),
    };
    write_frame(
        stream,
        &Frame::Outcome(SaslOutcome {
            code,
            additional_data,
        }),
    )
    .await?;
    stream.flush().await.map_err(SaslError::Io)?;
    result.map(|(identity, _)| identity).map_err(SaslError::Rejected)
}

async fn write_frame<S: AsyncWrite + Unpin>(stream: &mut S, frame: &Frame) -> Result<(), SaslError> {
    let body = serde_amqp::to_vec(frame).map_err(|e| SaslError::Malformed(e.to_string()))?;
    let size = u32::try_from(8 + body.len()).map_err(|_| SaslError::Malformed("frame too large".into()))?;
    let mut buf = Vec::with_capacity(8 + body.len());
    buf.extend_from_slice(&size.to_be_bytes());
    buf.extend_from_slice(&[0x02, 0x01, 0x00, 0x00]);
    buf.extend_from_slice(&body);
    stream.write_all(&buf).await.map_err(SaslError::Io)
}

async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Frame, SaslError> {
    let size = stream.read_u32().await.map_err(SaslError::Io)? as usize;
    if !(8..=MAX_SASL_FRAME).contains(&size) {
        return Err(SaslError::Malformed(format!(
            "frame size {size} outside 8..={MAX_SASL_FRAME}"
        )));
    }
    let mut rest = vec![0u8; size - 4];
    stream.read_exact(&mut rest).await.map_err(SaslError::Io)?;
    let doff = usize::from(rest[0]) * 4;
    if doff < 8 || doff > size || rest[1] != 0x01 {
        return Err(SaslError::Malformed(format!(
            "bad frame header (doff {doff}, type {})",
            rest[1]
        )));
    }
    serde_amqp::from_slice::<Frame>(&rest[doff - 4..]).map_err(|e| SaslError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_garbage_frame_is_a_clean_error_not_a_panic() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let task = tokio::spawn(async move {
            negotiate(&mut server, &enmasse_auth::authenticator::AcceptAll, true).await
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
            negotiate(&mut server, &enmasse_auth::authenticator::AcceptAll, true).await
        });
        let mut drain = [0u8; 256];
        let _ = client.read(&mut drain).await.unwrap();
        client.write_all(&[0x7f, 0xff, 0xff, 0xff]).await.unwrap();
        assert!(matches!(task.await.unwrap(), Err(SaslError::Malformed(_))));
    }
}
