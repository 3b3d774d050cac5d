//! Properties of the ingest route's body decoding: any headers and body are
//! decoded or refused, never a panic; gzip of generated NDJSON inflates to
//! the same bytes and ingests to as many events; a gzip bomb is refused
//! without inflating more than the limit.

use std::io::Write;

use axum::http::HeaderValue;
use flate2::{Compression, write::GzEncoder};
use proptest::{collection::vec, prelude::*, sample::select};

use super::*;
use crate::event_sets::{EventSets, Retention};
use datascale_testing as testing;

fn headers(content_type: Option<&str>, encoding: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [(CONTENT_TYPE, content_type), (CONTENT_ENCODING, encoding)] {
        if let Some(value) = value.and_then(|value| HeaderValue::from_str(value).ok()) {
            headers.insert(name, value);
        }
    }
    headers
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

proptest! {
    #![proptest_config(testing::cases(testing::CASES))]

    /// Any body under any headers: decoded, or refused with 400, 413 or 415.
    #[test]
    fn any_body_is_decoded_or_refused(
        content_type in proptest::option::of(prop_oneof![
            select(vec!["application/x-ndjson", "application/json; charset=utf-8", "text/html", ""]).prop_map(str::to_owned),
            "\\PC{0,20}",
        ]),
        encoding in proptest::option::of(prop_oneof![
            select(vec!["gzip", "identity", "br", ""]).prop_map(str::to_owned),
            "\\PC{0,10}",
        ]),
        body in prop_oneof![vec(any::<u8>(), 0..500), vec(any::<u8>(), 0..500).prop_map(|bytes| gzip(&bytes))],
        limit in 0..1_000u64,
    ) {
        let headers = headers(content_type.as_deref(), encoding.as_deref());
        match decoded(&headers, Bytes::from(body.clone()), limit) {
            Ok(inflated) => {
                let gzip = headers.get(CONTENT_ENCODING).is_some_and(|value| value == "gzip");
                prop_assert!(!gzip || inflated.len() as u64 <= limit);
                prop_assert!(gzip || inflated == body);
            }
            Err(ApiError::BadRequest(_) | ApiError::PayloadTooLarge(_) | ApiError::UnsupportedMediaType(_)) => {}
            Err(other) => return Err(TestCaseError::fail(format!("{other:?}"))),
        }
    }

    /// A gzip bomb is refused as too large while holding no more than
    /// about twice the limit (the inflated bytes kept while the vector
    /// grows) and the decompressor's own state.
    #[test]
    fn a_gzip_bomb_is_refused_within_the_limit(limit in 1..1u64 << 20) {
        let body = Bytes::from_static(bomb());
        let headers = headers(None, Some("gzip"));
        let (decoded, peak) = testing::peak_heap(|| decoded(&headers, body, limit));
        prop_assert!(matches!(decoded, Err(ApiError::PayloadTooLarge(_))));
        prop_assert!(peak as u64 <= 2 * (limit + 1) + 256 * 1024, "held {} bytes for a limit of {}", peak, limit);
    }
}

/// 64 MiB of zeros, gzipped (64 KiB), made once.
fn bomb() -> &'static [u8] {
    static BOMB: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BOMB.get_or_init(|| {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            encoder.write_all(&zeros).unwrap();
        }
        encoder.finish().unwrap()
    })
}

proptest! {
    #![proptest_config(testing::cases(24))]

    /// Generated events as NDJSON, gzipped or not, are decoded to the same
    /// bytes and stored as as many events, all found again.
    #[test]
    fn ndjson_of_events_is_stored_as_as_many(
        events in vec(testing::json_object(), 1..30),
        crlf in vec(any::<bool>(), 30),
        blank in vec(any::<bool>(), 30),
        compress in any::<bool>(),
    ) {
        let ndjson = testing::ndjson(&events, &crlf, &blank);
        let (body, encoding) = match compress {
            true => (gzip(&ndjson), Some("gzip")),
            false => (ndjson.clone(), None),
        };
        let decoded = decoded(&headers(None, encoding), Bytes::from(body), 16 << 20).unwrap();
        prop_assert_eq!(&decoded, &ndjson);

        let dir = tempfile::tempdir().unwrap();
        let retention = Retention { max_age_days: 0, max_size_mb: 0 };
        let sets = EventSets::open(dir.path(), retention).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (accepted, found) = runtime.block_on(async {
            let accepted = sets.ingest("ingested", decoded).await.unwrap();
            let query = crate::event_sets::query::Query::default();
            let page = sets.search("ingested", query, MAX_LIMIT, None).await.unwrap();
            (accepted, page.events.len())
        });
        prop_assert_eq!(accepted, events.len());
        prop_assert_eq!(found, events.len());
    }
}
