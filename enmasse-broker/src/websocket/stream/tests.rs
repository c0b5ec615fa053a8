use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

use super::*;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame: masked, as clients must send them.
fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    let mut masked = payload.to_vec();
    unmask(&mut masked, MASK, 0);
    frame.extend_from_slice(&masked);
    frame
}

/// Reads one server frame: its opcode and payload, checking that it is final and unmasked.
async fn server_frame(client: &mut DuplexStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await.unwrap();
    assert_eq!(
        head[0] & 0xF0,
        0x80,
        "a server frame is final, with no reserved bit"
    );
    assert_eq!(head[1] & 0x80, 0, "a server frame is not masked");
    let len = match head[1] & 0x7F {
        126 => u64::from(client.read_u16().await.unwrap()),
        127 => client.read_u64().await.unwrap(),
        short => u64::from(short),
    };
    let mut payload = vec![0u8; len as usize];
    client.read_exact(&mut payload).await.unwrap();
    (head[0] & 0x0F, payload)
}

fn pair() -> (DuplexStream, WebSocketStream<DuplexStream>) {
    let (client, server) = duplex(1 << 20);
    (client, WebSocketStream::new(server))
}

async fn read_exactly(server: &mut WebSocketStream<DuplexStream>, n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    server.read_exact(&mut bytes).await.unwrap();
    bytes
}

#[tokio::test]
async fn the_payloads_of_a_fragmented_binary_message_arrive_unmasked_and_in_order() {
    let (mut client, mut server) = pair();
    let mut frames = client_frame(false, BINARY, b"AMQP\x00\x01");
    frames.extend(client_frame(false, CONTINUATION, b"\x00\x00"));
    frames.extend(client_frame(true, CONTINUATION, b"rest of it"));
    frames.extend(client_frame(true, BINARY, &[7u8; 300]));
    client.write_all(&frames).await.unwrap();
    assert_eq!(
        read_exactly(&mut server, 18).await,
        b"AMQP\x00\x01\x00\x00rest of it"
    );
    assert_eq!(read_exactly(&mut server, 300).await, vec![7u8; 300]);
}

#[tokio::test]
async fn each_write_is_one_unmasked_binary_frame() {
    let (mut client, mut server) = pair();
    server.write_all(b"AMQP\x03\x01\x00\x00").await.unwrap();
    server.flush().await.unwrap();
    assert_eq!(
        server_frame(&mut client).await,
        (BINARY, b"AMQP\x03\x01\x00\x00".to_vec())
    );
    let large = vec![5u8; 70_000];
    server.write_all(&large).await.unwrap();
    server.flush().await.unwrap();
    let (_, first) = server_frame(&mut client).await;
    let (_, second) = server_frame(&mut client).await;
    assert_eq!(first.len(), MAX_OUTGOING_FRAME);
    assert_eq!([first, second].concat(), large);
}

#[tokio::test]
async fn a_ping_between_fragments_is_answered_with_its_payload() {
    let (mut client, mut server) = pair();
    let mut frames = client_frame(false, BINARY, b"ab");
    frames.extend(client_frame(true, PING, b"are you there"));
    frames.extend(client_frame(true, CONTINUATION, b"cd"));
    client.write_all(&frames).await.unwrap();
    assert_eq!(read_exactly(&mut server, 4).await, b"abcd");
    assert_eq!(server_frame(&mut client).await, (PONG, b"are you there".to_vec()));
}

#[tokio::test]
async fn a_close_is_echoed_and_ends_the_stream() {
    let (mut client, mut server) = pair();
    let mut frames = client_frame(true, BINARY, b"last");
    frames.extend(client_frame(true, CLOSE, &1001u16.to_be_bytes()));
    client.write_all(&frames).await.unwrap();
    let mut all = Vec::new();
    server.read_to_end(&mut all).await.unwrap();
    assert_eq!(all, b"last");
    assert_eq!(
        server_frame(&mut client).await,
        (CLOSE, 1001u16.to_be_bytes().to_vec())
    );
    assert!(
        server.write_all(b"more").await.is_err(),
        "nothing is written after a close"
    );
}

#[tokio::test]
async fn shutting_down_sends_a_normal_close() {
    let (mut client, mut server) = pair();
    server.shutdown().await.unwrap();
    assert_eq!(
        server_frame(&mut client).await,
        (CLOSE, 1000u16.to_be_bytes().to_vec())
    );
}

/// Sends `bytes` and expects the read to fail with `error`, the client told with `code`.
async fn refused(bytes: Vec<u8>, error: FrameError, code: u16) {
    let (mut client, mut server) = pair();
    client.write_all(&bytes).await.unwrap();
    let mut sink = [0u8; 64];
    let failed = loop {
        match server.read(&mut sink).await {
            Ok(0) => panic!("the stream ended without the error {error}"),
            Ok(_) => {}
            Err(err) => break err,
        }
    };
    assert_eq!(failed.kind(), io::ErrorKind::InvalidData);
    let inner = failed.into_inner().unwrap().downcast::<FrameError>().unwrap();
    assert_eq!(*inner, error);
    let (opcode, payload) = server_frame(&mut client).await;
    assert_eq!(opcode, CLOSE);
    assert_eq!(payload[..2], code.to_be_bytes());
    assert_eq!(std::str::from_utf8(&payload[2..]).unwrap(), error.to_string());
}

#[tokio::test]
async fn an_unmasked_frame_is_a_protocol_error() {
    let mut frame = client_frame(true, BINARY, b"x");
    frame[1] &= 0x7F;
    frame.drain(2..6);
    refused(frame, FrameError::Unmasked, 1002).await;
}

#[tokio::test]
async fn a_text_message_is_refused_as_data_the_binding_does_not_carry() {
    refused(client_frame(true, TEXT, b"hello"), FrameError::Text, 1003).await;
}

#[tokio::test]
async fn frames_that_break_the_protocol_are_refused_with_the_reason() {
    let mut reserved = client_frame(true, BINARY, b"x");
    reserved[0] |= 0x40;
    refused(reserved, FrameError::ReservedBits, 1002).await;
    refused(client_frame(true, 0x3, b""), FrameError::UnknownOpcode(3), 1002).await;
    refused(client_frame(false, PING, b""), FrameError::BadControl, 1002).await;
    refused(client_frame(true, PING, &[0; 126]), FrameError::BadControl, 1002).await;
    refused(
        client_frame(true, CONTINUATION, b"x"),
        FrameError::Fragmentation,
        1002,
    )
    .await;
    let unfinished = [
        client_frame(false, BINARY, b"a"),
        client_frame(true, BINARY, b"b"),
    ]
    .concat();
    refused(unfinished, FrameError::Fragmentation, 1002).await;
    refused(client_frame(true, CLOSE, &[3]), FrameError::BadClose, 1002).await;
    refused(
        client_frame(true, CLOSE, &1005u16.to_be_bytes()),
        FrameError::BadClose,
        1002,
    )
    .await;
    let not_utf8 = [&1000u16.to_be_bytes()[..], &[0xff, 0xfe]].concat();
    refused(
        client_frame(true, CLOSE, &not_utf8),
        FrameError::CloseReason,
        1007,
    )
    .await;
    let mut huge = vec![0x82, 0x80 | 127];
    huge.extend_from_slice(&u64::MAX.to_be_bytes());
    huge.extend_from_slice(&MASK);
    refused(huge, FrameError::Length, 1002).await;
}

#[tokio::test]
async fn a_frame_that_claims_more_than_it_holds_allocates_nothing_and_streams_what_is_there() {
    let (mut client, mut server) = pair();
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend_from_slice(&(1u64 << 62).to_be_bytes());
    frame.extend_from_slice(&MASK);
    let mut payload = b"only this".to_vec();
    unmask(&mut payload, MASK, 0);
    frame.extend_from_slice(&payload);
    client.write_all(&frame).await.unwrap();
    assert_eq!(read_exactly(&mut server, 9).await, b"only this");
    drop(client);
    let mut rest = [0u8; 16];
    let ended = server.read(&mut rest).await.unwrap_err();
    assert_eq!(ended.kind(), io::ErrorKind::UnexpectedEof);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_split_of_the_frames_gives_the_same_bytes(
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 1..6),
        fragment in 1usize..200,
        chunk in 1usize..97,
        read_size in 1usize..300,
    ) {
        let expected: Vec<u8> = messages.concat();
        let mut wire = Vec::new();
        for message in &messages {
            let parts: Vec<&[u8]> = if message.is_empty() { vec![&[][..]] } else { message.chunks(fragment).collect() };
            for (i, part) in parts.iter().enumerate() {
                let opcode = if i == 0 { BINARY } else { CONTINUATION };
                wire.extend(client_frame(i + 1 == parts.len(), opcode, part));
                if i == 0 {
                    wire.extend(client_frame(true, PONG, b"unsolicited"));
                }
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let received = runtime.block_on(async move {
            let (mut client, mut server) = pair();
            let writer = tokio::spawn(async move {
                for piece in wire.chunks(chunk) {
                    client.write_all(piece).await.unwrap();
                }
                client.write_all(&client_frame(true, CLOSE, &[])).await.unwrap();
                client
            });
            let mut received = Vec::new();
            let mut buffer = vec![0u8; read_size];
            loop {
                let n = server.read(&mut buffer).await.unwrap();
                if n == 0 { break; }
                received.extend_from_slice(&buffer[..n]);
            }
            drop(writer.await.unwrap());
            received
        });
        prop_assert_eq!(received, expected);
    }
}
