//! A structure-aware fuzz harness over the connection engine, on the stable toolchain.
//!
//! Each input is one connection's worth of bytes: the protocol header and a sequence of frames
//! (open, begin, attach, flow, transfer, disposition, detach, end, close) with fields drawn from
//! small ranges, so that handles, channels and delivery ids collide and the state machines are
//! driven through their corners: links of every kind (plain, dynamic, the coordinator, durable and
//! shared subscriptions, selectors good and bad, the anonymous relay), transfers and outcomes in
//! transactions, declares and discharges, and then, for a share of the inputs, mutated (bytes flipped,
//! cut, or garbage spliced in). The bytes go through the real engine of a broker serving a queue,
//! a topic and an anycast address, in chunks as a socket would deliver them. No input may panic,
//! and the output the engine buffers stays bounded.
//!
//! CI runs a bounded number of inputs. The long run (docs/amqp-engine.md) sets `FUZZ_INPUTS`:
//! `FUZZ_INPUTS=10000000 cargo test --release -p enmasse-broker --test fuzz -- --nocapture`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod common;

use std::sync::Arc;

use common::{address, config};
use enmasse_auth::authenticator::{AcceptAll, Authenticator};
use enmasse_broker::{
    amqp::{
        encode::Encoder,
        frame,
        performative::{
            AttachReply, DeliveryState, Disposition, ErrorInfo, FilterKind, Flow, Role, SourceFilter,
            Terminus,
        },
    },
    broker::{Broker, Settings},
    engine::Engine,
};
use enmasse_types::resources::address::AddressType;
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};

/// One frame of a generated input.
#[derive(Clone, Debug)]
enum Step {
    Open {
        max_frame: u32,
        idle: Option<u32>,
    },
    Begin {
        channel: u16,
    },
    Attach {
        channel: u16,
        handle: u32,
        name: u8,
        receiver: bool,
        address: u8,
        max_size: Option<u64>,
        kind: u8,
    },
    Flow {
        channel: u16,
        handle: Option<u32>,
        count: u32,
        credit: u32,
        drain: bool,
        echo: bool,
    },
    Transfer {
        channel: u16,
        handle: u32,
        id: Option<u32>,
        more: bool,
        aborted: bool,
        body: Body,
        txn: Option<u8>,
    },
    Disposition {
        channel: u16,
        receiver: bool,
        first: u32,
        last: Option<u32>,
        settled: bool,
        outcome: u8,
    },
    Detach {
        channel: u16,
        handle: u32,
        closed: bool,
    },
    End {
        channel: u16,
    },
    Close,
    Heartbeat,
}

/// A transfer's payload.
#[derive(Clone, Debug)]
enum Body {
    /// A well-formed message of one data section.
    Message(usize),
    /// Bytes of any kind.
    Garbage(Vec<u8>),
    /// A declare, for the coordinator.
    Declare,
    /// A discharge of a transaction id, committing or failing it.
    Discharge(u8, bool),
}

/// Selectors a receiver may ask for: good ones, and ones that do not parse.
const SELECTORS: [&str; 4] = [
    "colour = 'green'",
    "JMSPriority > 4 AND x LIKE 'a%'",
    "colour = ",
    "(((((",
];

/// A transaction id as the broker hands them out (a counter, big-endian), from a small range.
fn txn_id(n: u8) -> [u8; 8] {
    u64::from(n).to_be_bytes()
}

fn step() -> impl Strategy<Value = Step> {
    let channel = 0u16..3;
    let handle = 0u32..4;
    prop_oneof![
        1 => (prop_oneof![Just(512u32), Just(4096), Just(65_536), any::<u32>()], proptest::option::of(0u32..2_000))
            .prop_map(|(max_frame, idle)| Step::Open { max_frame, idle }),
        3 => channel.clone().prop_map(|channel| Step::Begin { channel }),
        4 => (channel.clone(), handle.clone(), 0u8..3, any::<bool>(), 0u8..4, proptest::option::of(0u64..100_000), 0u8..8)
            .prop_map(|(channel, handle, name, receiver, address, max_size, kind)| Step::Attach {
                channel, handle, name, receiver, address, max_size, kind,
            }),
        4 => (channel.clone(), proptest::option::of(handle.clone()), 0u32..20, prop_oneof![0u32..20, any::<u32>()], any::<bool>(), any::<bool>())
            .prop_map(|(channel, handle, count, credit, drain, echo)| Step::Flow { channel, handle, count, credit, drain, echo }),
        8 => (
            channel.clone(),
            handle.clone(),
            proptest::option::of(0u32..12),
            any::<bool>(),
            prop::bool::weighted(0.05),
            prop_oneof![
                3 => (0usize..70_000).prop_map(Body::Message),
                1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Body::Garbage),
                1 => Just(Body::Declare),
                1 => (0u8..4, any::<bool>()).prop_map(|(txn, fail)| Body::Discharge(txn, fail)),
            ],
            proptest::option::weighted(0.2, 0u8..4),
        )
            .prop_map(|(channel, handle, id, more, aborted, body, txn)| Step::Transfer { channel, handle, id, more, aborted, body, txn }),
        4 => (channel.clone(), any::<bool>(), 0u32..12, proptest::option::of(prop_oneof![0u32..12, any::<u32>()]), any::<bool>(), 0u8..8)
            .prop_map(|(channel, receiver, first, last, settled, outcome)| Step::Disposition { channel, receiver, first, last, settled, outcome }),
        2 => (channel.clone(), handle, any::<bool>()).prop_map(|(channel, handle, closed)| Step::Detach { channel, handle, closed }),
        1 => channel.prop_map(|channel| Step::End { channel }),
        1 => Just(Step::Close),
        1 => Just(Step::Heartbeat),
    ]
}

/// One input: frames, an optional mutation, and where the socket cuts the bytes.
#[derive(Clone, Debug)]
struct Input {
    steps: Vec<Step>,
    mutations: Vec<(usize, u8)>,
    cut: Option<usize>,
    chunk: usize,
}

fn input() -> impl Strategy<Value = Input> {
    (
        proptest::collection::vec(step(), 0..24),
        prop_oneof![
            3 => Just(Vec::new()),
            1 => proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        ],
        proptest::option::weighted(0.1, any::<usize>()),
        prop_oneof![Just(usize::MAX), 1usize..64, 64usize..4096],
    )
        .prop_map(|(steps, mutations, cut, chunk)| Input {
            steps,
            mutations,
            cut,
            chunk,
        })
}

const ADDRESSES: [&str; 4] = ["orders", "events", "direct", "missing"];

fn encode(steps: &[Step]) -> Vec<u8> {
    let mut out = b"AMQP\x00\x01\x00\x00".to_vec();
    let mut opened = false;
    for step in steps {
        if !opened && !matches!(step, Step::Open { .. }) {
            // Most inputs get past the open, so that the rest is exercised.
            frame::write_amqp(&mut out, 0, |e| e.open("fuzz", 65_536, 255, 0, &[]));
        }
        opened = true;
        match step {
            Step::Open { max_frame, idle } => {
                frame::write_amqp(&mut out, 0, |e| {
                    e.open("fuzz", *max_frame, 255, idle.unwrap_or(0), &[])
                });
            }
            Step::Begin { channel } => frame::write_amqp(&mut out, *channel, common::raw::begin),
            Step::Attach {
                channel,
                handle,
                name,
                receiver,
                address,
                max_size,
                kind,
            } => {
                let mut terminus = Terminus {
                    address: Some(ADDRESSES[*address as usize].to_owned()),
                    ..Terminus::default()
                };
                match kind {
                    1 => {
                        terminus.address = None;
                        terminus.dynamic = true;
                    }
                    2 => {
                        terminus.coordinator = !*receiver;
                        terminus.capabilities = vec!["amqp:local-transactions".to_owned()];
                    }
                    3 => {
                        terminus.durable = 2;
                        terminus.expiry_policy = Some("never".to_owned());
                        terminus.capabilities = vec!["topic".to_owned(), "shared".to_owned()];
                    }
                    4 | 5 => terminus.filters.push(SourceFilter {
                        key: "jms-selector".to_owned(),
                        kind: FilterKind::Selector(SELECTORS[usize::from(*handle as u8 % 4)].to_owned()),
                    }),
                    6 => terminus.address = None,
                    _ => {}
                }
                let name = format!("link-{name}");
                let role = if *receiver { Role::Receiver } else { Role::Sender };
                frame::write_amqp(&mut out, *channel, |e| {
                    e.attach(&AttachReply {
                        name: &name,
                        handle: *handle,
                        role,
                        snd_settle_mode: 2,
                        source: Some(&terminus),
                        target: Some(&terminus),
                        initial_delivery_count: (!*receiver).then_some(0),
                        max_message_size: *max_size,
                    })
                });
            }
            Step::Flow {
                channel,
                handle,
                count,
                credit,
                drain,
                echo,
            } => {
                let flow = Flow {
                    next_incoming_id: Some(0),
                    incoming_window: 100,
                    next_outgoing_id: 0,
                    outgoing_window: 100,
                    handle: *handle,
                    delivery_count: handle.map(|_| *count),
                    link_credit: handle.map(|_| *credit),
                    drain: *drain,
                    echo: *echo,
                    ..Flow::default()
                };
                frame::write_amqp(&mut out, *channel, |e| e.flow(&flow));
            }
            Step::Transfer {
                channel,
                handle,
                id,
                more,
                aborted,
                body,
                txn,
            } => {
                let payload = match body {
                    Body::Message(size) => {
                        let mut message = Vec::new();
                        let mut e = Encoder::new(&mut message);
                        e.descriptor(0x75);
                        e.binary(&vec![b'x'; (*size).min(60_000)]);
                        message
                    }
                    Body::Garbage(bytes) => bytes.clone(),
                    Body::Declare | Body::Discharge(..) => {
                        let mut message = Vec::new();
                        let mut e = Encoder::new(&mut message);
                        e.descriptor(0x77);
                        match body {
                            Body::Discharge(txn, fail) => {
                                e.descriptor(0x32);
                                let mut l = e.list();
                                l.field(|e| e.binary(&txn_id(*txn)));
                                l.field(|e| e.bool(*fail));
                                l.end();
                            }
                            _ => {
                                e.descriptor(0x31);
                                e.list().end();
                            }
                        }
                        message
                    }
                };
                let tag = id.unwrap_or(0).to_be_bytes();
                frame::write(
                    &mut out,
                    frame::AMQP_FRAME,
                    *channel,
                    |e| {
                        e.descriptor(0x14);
                        let mut l = e.list();
                        l.field(|e| e.uint(*handle));
                        l.optional(*id, Encoder::uint);
                        l.optional(id.map(|_| &tag[..]), Encoder::binary);
                        l.field(|e| e.uint(0));
                        l.flag(false);
                        l.flag(*more);
                        l.absent(); // rcv-settle-mode
                        l.optional(*txn, |e, txn| {
                            e.descriptor(0x34);
                            let mut state = e.list();
                            state.field(|e| e.binary(&txn_id(txn)));
                            state.end();
                        });
                        l.absent(); // resume
                        l.flag(*aborted);
                        l.end();
                    },
                    &payload,
                );
            }
            Step::Disposition {
                channel,
                receiver,
                first,
                last,
                settled,
                outcome,
            } => {
                let state = match outcome {
                    0 => Some(DeliveryState::Accepted),
                    1 => Some(DeliveryState::Rejected(Some(ErrorInfo::new("x:y", "z")))),
                    2 => Some(DeliveryState::Released),
                    3 => Some(DeliveryState::Modified {
                        delivery_failed: true,
                        undeliverable_here: false,
                    }),
                    4 => Some(DeliveryState::Other),
                    5 | 6 => Some(DeliveryState::Transactional {
                        txn_id: txn_id(*outcome - 4).to_vec(),
                        outcome: Some(Box::new(DeliveryState::Accepted)),
                    }),
                    _ => None,
                };
                let disposition = Disposition {
                    role: if *receiver { Role::Receiver } else { Role::Sender },
                    first: *first,
                    last: *last,
                    settled: *settled,
                    state,
                };
                frame::write_amqp(&mut out, *channel, |e| e.disposition(&disposition));
            }
            Step::Detach {
                channel,
                handle,
                closed,
            } => {
                frame::write_amqp(&mut out, *channel, |e| e.detach(*handle, *closed, None));
            }
            Step::End { channel } => frame::write_amqp(&mut out, *channel, |e| e.end(None)),
            Step::Close => frame::write_amqp(&mut out, 0, |e| e.close(None)),
            Step::Heartbeat => out.extend_from_slice(&frame::HEARTBEAT),
        }
    }
    out
}

fn broker() -> Arc<Broker> {
    let broker = Broker::new(Settings::default(), Arc::new(AcceptAll));
    broker.apply(
        config(vec![
            address("orders", AddressType::Queue),
            address("events", AddressType::Topic),
            address("direct", AddressType::Anycast),
        ]),
        Arc::new(AcceptAll),
    );
    broker
}

/// Feeds one input to a fresh engine of `broker`, as a socket would, and checks its output stays
/// bounded.
fn run(broker: &Arc<Broker>, input: &Input) {
    let mut bytes = encode(&input.steps);
    for (at, value) in &input.mutations {
        if !bytes.is_empty() {
            let at = at % bytes.len();
            bytes[at] = *value;
        }
    }
    if let Some(cut) = input.cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    let identity = Arc::new(AcceptAll.anonymous().expect("anonymous"));
    let mut engine = Engine::new(broker.clone(), identity, "127.0.0.1:1".parse().unwrap());
    let mut buffered: Vec<u8> = Vec::new();
    for chunk in bytes.chunks(input.chunk.max(1)) {
        buffered.extend_from_slice(chunk);
        let used = engine.receive(&buffered);
        buffered.drain(..used);
        engine.pump();
        assert!(
            engine.output.len() < 8 << 20,
            "the engine buffered {} bytes of output",
            engine.output.len()
        );
        engine.output.clear();
        if engine.is_done() {
            break;
        }
    }
    engine.finish();
}

#[test]
fn no_sequence_of_frames_makes_the_engine_panic_or_balloon() {
    let inputs: u32 = std::env::var("FUZZ_INPUTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3_000);
    // Outcomes left by a connection are driven by a task of their own: a worker runs them.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let broker = broker();
    let mut runner = TestRunner::new(Config {
        cases: inputs,
        failure_persistence: None,
        ..Config::default()
    });
    let started = std::time::Instant::now();
    runner
        .run(&input(), |input| {
            run(&broker, &input);
            Ok(())
        })
        .unwrap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: ?");
    println!(
        "{inputs} inputs in {:.1?}; peak resident memory {}",
        started.elapsed(),
        peak.trim_start_matches("VmHWM:").trim()
    );
}
