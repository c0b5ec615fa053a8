//! The decoder against hostile bytes: lying lengths, deep nesting, zero-width arrays, and random
//! input, none of which may panic, allocate what is not there, or recurse without bound.

use proptest::prelude::*;

use super::*;
use crate::amqp::{encode::Encoder, performative::Performative, sections};

/// A string that claims 0xFFFFFFF0 bytes and carries 8.
#[test]
fn a_length_that_claims_more_than_the_frame_holds_is_truncated_not_allocated() {
    let mut bytes = vec![code::STR32, 0xff, 0xff, 0xff, 0xf0];
    bytes.extend_from_slice(b"12345678");
    assert_eq!(Decoder::new(&bytes).string(), Err(DecodeError::Truncated));
    assert_eq!(Decoder::new(&bytes).skip(), Err(DecodeError::Truncated));
}

#[test]
fn a_list_that_claims_more_items_than_bytes_is_refused() {
    // list8 of 3 bytes declaring 200 items.
    let bytes = [code::LIST8, 3, 200, code::NULL, code::NULL];
    assert!(matches!(
        Decoder::new(&bytes).list(),
        Err(DecodeError::Invalid(_))
    ));
    assert!(matches!(
        Decoder::new(&bytes).skip(),
        Err(DecodeError::Invalid(_))
    ));
}

#[test]
fn values_nested_three_thousand_deep_are_refused_without_recursing() {
    // What crashed the old layer: described values nested thousands deep.
    let mut bytes = Vec::new();
    for _ in 0..3000 {
        bytes.extend_from_slice(&[code::DESCRIBED, code::SMALLULONG, 0x01]);
    }
    bytes.push(code::NULL);
    assert_eq!(Decoder::new(&bytes).skip(), Err(DecodeError::TooDeep));
    // Lists inside lists, likewise.
    let mut nested = vec![code::NULL];
    for _ in 0..3000 {
        let mut outer = vec![code::LIST32];
        outer.extend_from_slice(&(nested.len() as u32 + 4).to_be_bytes());
        outer.extend_from_slice(&1u32.to_be_bytes());
        outer.extend_from_slice(&nested);
        nested = outer;
    }
    assert_eq!(Decoder::new(&nested).skip(), Err(DecodeError::TooDeep));
}

#[test]
fn an_array_of_four_billion_nulls_is_skipped_without_a_loop() {
    let bytes = [code::ARRAY32, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, code::NULL];
    let started = std::time::Instant::now();
    assert_eq!(Decoder::new(&bytes).skip(), Ok(()));
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn an_array_of_fixed_width_elements_must_hold_them_all() {
    let bytes = [code::ARRAY8, 3, 100, code::UINT, 0];
    assert_eq!(Decoder::new(&bytes).skip(), Err(DecodeError::Truncated));
}

#[test]
fn a_symbol_array_reads_every_symbol_and_a_single_symbol_counts_as_one() {
    let mut bytes = Vec::new();
    Encoder::new(&mut bytes).symbols(&["a", "bc"]);
    let mut seen = Vec::new();
    Decoder::new(&bytes).symbols(|s| seen.push(s.to_owned())).unwrap();
    assert_eq!(seen, ["a", "bc"]);
    let mut one = Vec::new();
    Encoder::new(&mut one).symbol("x");
    let mut seen = Vec::new();
    Decoder::new(&one).symbols(|s| seen.push(s.to_owned())).unwrap();
    assert_eq!(seen, ["x"]);
}

#[test]
fn a_list_that_ends_early_reads_its_missing_fields_as_absent() {
    let mut bytes = Vec::new();
    let mut enc = Encoder::new(&mut bytes);
    let mut list = enc.list();
    list.field(|e| e.uint(7));
    list.absent();
    list.end();
    let mut fields = Decoder::new(&bytes).list().unwrap();
    assert_eq!(fields.remaining(), 1, "trailing nulls are not written");
    assert_eq!(fields.next(Decoder::uint).unwrap(), Some(7));
    assert_eq!(fields.next(Decoder::uint).unwrap(), None);
}

#[test]
fn narrow_encodings_of_unsigned_numbers_are_accepted_where_wider_ones_are_declared() {
    for (bytes, value) in [
        (&[code::UINT0][..], 0),
        (&[code::SMALLUINT, 9][..], 9),
        (&[code::UINT, 0, 0, 1, 0][..], 256),
    ] {
        assert_eq!(Decoder::new(bytes).uint(), Ok(value));
        assert_eq!(Decoder::new(bytes).ulong(), Ok(u64::from(value)));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_bytes_make_the_performative_decoder_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Performative::decode(&mut Decoder::new(&bytes));
        let _ = sections::parse(&bytes);
        let _ = Decoder::new(&bytes).skip();
    }

    #[test]
    fn no_bytes_after_a_performative_descriptor_make_it_panic(
        code in 0x10u8..=0x18,
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = vec![code::DESCRIBED, code::SMALLULONG, code];
        bytes.extend_from_slice(&body);
        let _ = Performative::decode(&mut Decoder::new(&bytes));
    }
}
