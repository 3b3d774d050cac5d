//! Properties of the `http_server` source's decoding: any body, under any
//! codec, is decoded or refused with the reason, never a panic however deep
//! its JSON; generated events sent as NDJSON or a JSON array come back as
//! as many events with their fields.

use proptest::{collection::vec, prelude::*, sample::select};

use super::*;
use datascale_testing as testing;

fn origin() -> Origin {
    Origin::new("h", "d", "s")
}

/// Fields the source sets on every event: the origin's, and a timestamp
/// when the event has none.
const STAMPED: [&str; 4] = ["timestamp", "host", "dataflow", "source"];

/// The fields of a decoded event as JSON, without those it stamps.
fn fields_of(event: &Event) -> serde_json::Map<String, serde_json::Value> {
    let serde_json::Value::Object(mut fields) = serde_json::to_value(&event.value).unwrap() else {
        panic!("an event is an object");
    };
    for name in STAMPED {
        fields.remove(name);
    }
    fields
}

proptest! {
    #![proptest_config(testing::cases(testing::CASES))]

    /// Any bytes under any codec: events, or a reason.
    #[test]
    fn any_body_is_decoded_or_refused(
        codec in select(vec![DecodingCodec::Bytes, DecodingCodec::Json, DecodingCodec::Ndjson]),
        body in prop_oneof![
            vec(any::<u8>(), 0..1_000),
            vec(select(vec![b'{', b'}', b'[', b']', b'"', b':', b',', b'\n', b'1', b'a']), 0..300),
        ],
    ) {
        match decode(codec, Bytes::from(body), &origin()) {
            Ok(_) => {}
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }

    /// Generated events, as NDJSON or as a JSON array, decode to as many
    /// events, in order, with their fields.
    #[test]
    fn events_decode_to_as_many(
        events in vec(testing::json_object(), 0..20),
        crlf in vec(any::<bool>(), 20),
        blank in vec(any::<bool>(), 20),
        array in any::<bool>(),
    ) {
        let (codec, body) = match array {
            true => (DecodingCodec::Json, serde_json::to_vec(&events).unwrap()),
            false => (DecodingCodec::Ndjson, testing::ndjson(&events, &crlf, &blank)),
        };
        let decoded = decode(codec, Bytes::from(body), &origin()).unwrap();
        prop_assert_eq!(decoded.len(), events.len());
        for (event, sent) in decoded.iter().zip(&events) {
            let mut sent = sent.clone();
            for name in STAMPED {
                sent.remove(name);
            }
            prop_assert_eq!(fields_of(event), sent);
        }
    }

    /// JSON nested deeper than serde_json reads is refused.
    #[test]
    fn deep_nesting_is_refused(
        depth in testing::JSON_DEPTH_LIMIT + 1..50_000usize,
        objects in any::<bool>(),
        codec in select(vec![DecodingCodec::Json, DecodingCodec::Ndjson]),
    ) {
        let body = testing::deeply_nested(depth, objects);
        prop_assert!(decode(codec, Bytes::from(body), &origin()).is_err());
    }
}
