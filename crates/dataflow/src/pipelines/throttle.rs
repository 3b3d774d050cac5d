//! `throttle`: passes at most `threshold` events per window of
//! `window_secs`, counted per value of the key field when there is one.
//!
//! Here too: the `throttle` `conf`, with its defaults, its checks and its build.

use std::{collections::HashMap, time::Duration};

use datascale_core::{
    component::{BuildError, ComponentTask, PipelineContext},
    event::Event,
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use vrl::{path::OwnedValuePath, value::Value};

use super::{PipelineType, check_key_field, field_path, keep_where};
use crate::{Problems, TypeConf, invalid};

/// `throttle`: passes at most `threshold` events per `window_secs` (per key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Events allowed per window.
    pub threshold: u64,
    /// Length of the window in seconds.
    pub window_secs: f64,
    /// Count separately per value of this field.
    #[serde(default)]
    pub key_field: Option<String>,
}

impl PipelineType for ThrottleConfig {
    fn build(&self, name: &str, context: PipelineContext) -> Result<ComponentTask, BuildError> {
        let mut throttler = Throttler::new(self).map_err(invalid(name))?;
        Ok(keep_where(context, move |event| {
            throttler.keep(event, tokio::time::Instant::now())
        }))
    }
}

impl TypeConf for ThrottleConfig {
    fn check(&self, problems: &mut Problems) {
        check_key_field(self.key_field.as_deref(), problems);
        if self.threshold == 0 {
            problems.add("threshold", "must be at least 1");
        }
        if !(self.window_secs.is_finite() && self.window_secs > 0.0) {
            problems.add("window_secs", "must be more than 0");
        }
    }
}

/// One key's window: when it opened and how many events it passed.
struct Window {
    opened: Instant,
    passed: u64,
}

/// The state of a `throttle`.
struct Throttler {
    threshold: u64,
    length: Duration,
    key: Option<OwnedValuePath>,
    /// Open windows by key value; events without one share `None`.
    windows: HashMap<Option<Value>, Window>,
    /// When windows that have closed were last forgotten.
    pruned: Instant,
}

impl Throttler {
    /// A throttle for `config`; fails when `key_field` is not a field path.
    pub fn new(config: &ThrottleConfig) -> Result<Self, String> {
        Ok(Self {
            threshold: config.threshold,
            length: Duration::try_from_secs_f64(config.window_secs)
                .map_err(|_| format!("window_secs {} is not a duration", config.window_secs))?,
            key: config.key_field.as_deref().map(field_path).transpose()?,
            windows: HashMap::new(),
            pruned: Instant::now(),
        })
    }

    /// Whether `event`, arriving at `now`, still fits in its key's window.
    pub fn keep(&mut self, event: &Event, now: Instant) -> bool {
        if now.duration_since(self.pruned) >= self.length {
            let length = self.length;
            self.windows
                .retain(|_, window| now.duration_since(window.opened) < length);
            self.pruned = now;
        }
        let key = self
            .key
            .as_ref()
            .and_then(|key| event.value.get(key))
            .cloned();
        let window = self.windows.entry(key).or_insert(Window {
            opened: now,
            passed: 0,
        });
        if now.duration_since(window.opened) >= self.length {
            *window = Window {
                opened: now,
                passed: 0,
            };
        }
        let keep = window.passed < self.threshold;
        window.passed += u64::from(keep);
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(host: &str) -> Event {
        Event {
            value: Value::Object([("host".into(), Value::from(host))].into()),
        }
    }

    #[test]
    fn each_key_passes_threshold_events_per_window() {
        let mut throttle = Throttler::new(&ThrottleConfig {
            threshold: 2,
            window_secs: 10.0,
            key_field: Some("host".to_owned()),
        })
        .unwrap();
        let start = Instant::now();
        let passed = |throttle: &mut Throttler, host: &str, at: u64| {
            (0..5)
                .filter(|_| throttle.keep(&event(host), start + Duration::from_secs(at)))
                .count()
        };
        assert_eq!(passed(&mut throttle, "a", 0), 2);
        assert_eq!(passed(&mut throttle, "b", 1), 2);
        assert_eq!(passed(&mut throttle, "a", 9), 0, "a's window is still open");
        assert_eq!(passed(&mut throttle, "a", 10), 2, "a new window for a");
        assert_eq!(passed(&mut throttle, "b", 10), 0, "b's window opened at 1");
        assert_eq!(throttle.windows.len(), 2);
        assert_eq!(passed(&mut throttle, "c", 25), 2);
        assert_eq!(throttle.windows.len(), 1, "closed windows are forgotten");
    }
}
