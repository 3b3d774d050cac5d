//! Properties of the `http` sink's handling of answers and of its
//! configuration: every status is delivered, retried or refused as
//! documented; a refusing answer's body is logged as its first bytes only;
//! every configuration that validation accepts builds a sink.

use proptest::{collection::vec, prelude::*};

use super::*;
use crate::{ComponentConfig, sinks::SinkConfig};
use datascale_testing as testing;

proptest! {
    #![proptest_config(testing::cases(testing::CASES))]

    /// 2xx delivers; 429 and 5xx are retried elsewhere; 401 waits for a
    /// renewed credential where one is being renewed; anything else is final.
    #[test]
    fn every_status_has_its_documented_verdict(code in 100..1_000u16, renewing in any::<bool>()) {
        let status = StatusCode::from_u16(code).unwrap();
        let expected = match code {
            200..=299 => Verdict::Delivered,
            429 | 500..=599 => Verdict::RetryElsewhere,
            401 if renewing => Verdict::AwaitCredential,
            _ => Verdict::Refused,
        };
        prop_assert_eq!(verdict(status, renewing), expected);
    }

    /// Of any body, only the first [`EXCERPT_BYTES`] bytes are kept for the
    /// log, as text.
    #[test]
    fn a_refusing_body_is_cut_for_the_log(body in vec(any::<u8>(), 0..3 * EXCERPT_BYTES)) {
        let response = reqwest::Response::from(axum::http::Response::new(body.clone()));
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let excerpt = runtime.block_on(excerpt(response));
        let kept = &body[..body.len().min(EXCERPT_BYTES)];
        prop_assert_eq!(excerpt, String::from_utf8_lossy(kept).into_owned());
    }

    /// Every batch and request setting that validation accepts makes a
    /// sink, whose first partial batch can be given its deadline.
    #[test]
    fn every_accepted_configuration_builds(
        max_events in 0..usize::MAX,
        max_bytes in 0..usize::MAX,
        timeout in prop_oneof![any::<f64>().prop_filter("JSON holds finite numbers", |f| f.is_finite()), 0.0..1e3f64, 1e9..1e20f64],
        request in (any::<u64>(), any::<u64>(), any::<u64>()),
    ) {
        let config: HttpSinkConfig = serde_json::from_value(serde_json::json!({
            "uri": "http://127.0.0.1:9/ingest",
            "batch": {"max_events": max_events, "max_bytes": max_bytes, "timeout_secs": timeout},
            "request": {"timeout_secs": request.0, "retry_initial_backoff_secs": request.1,
                        "retry_max_duration_secs": request.2},
        }))
        .unwrap();
        if SinkConfig::Http(config.clone()).problems().is_empty() {
            let sink = HttpSink::new(&config).unwrap();
            prop_assert!(Instant::now().checked_add(sink.batch_timeout).is_some());
        }
    }
}
