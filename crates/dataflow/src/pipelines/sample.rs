//! `sample`: keeps one event in `rate`, by counting, or by the value of a
//! key field so that events with the same value are kept or dropped together.
//!
//! Here too: the `sample` `conf`, with its defaults, its checks and its build.

use std::hash::{DefaultHasher, Hash, Hasher};

use datascale_core::{
    component::{BuildError, ComponentTask, PipelineContext},
    event::Event,
};
use serde::{Deserialize, Serialize};
use vrl::path::OwnedValuePath;

use super::{PipelineType, check_key_field, field_path, keep_where};
use crate::{Problems, TypeConf, invalid};

/// `sample`: keeps one event in `rate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// Keep one event in this many (1 keeps all).
    pub rate: u64,
    /// Sample by the value of this field, so that events with the same value are kept or dropped together.
    #[serde(default)]
    pub key_field: Option<String>,
}

impl PipelineType for SampleConfig {
    fn build(&self, name: &str, context: PipelineContext) -> Result<ComponentTask, BuildError> {
        let mut sampler = Sampler::new(self).map_err(invalid(name))?;
        Ok(keep_where(context, move |event| sampler.keep(event)))
    }
}

impl TypeConf for SampleConfig {
    fn check(&self, problems: &mut Problems) {
        check_key_field(self.key_field.as_deref(), problems);
        if self.rate == 0 {
            problems.add("rate", "must be at least 1");
        }
    }
}

/// The state of a `sample`.
struct Sampler {
    rate: u64,
    key: Option<OwnedValuePath>,
    /// Events sampled by counting so far.
    counted: u64,
}

impl Sampler {
    /// A sampler for `config`; fails when `key_field` is not a field path.
    pub fn new(config: &SampleConfig) -> Result<Self, String> {
        Ok(Self {
            rate: config.rate.max(1),
            key: config.key_field.as_deref().map(field_path).transpose()?,
            counted: 0,
        })
    }

    /// Whether to keep `event`. Events without the key field are counted:
    /// the first is kept, then every `rate`th.
    pub fn keep(&mut self, event: &Event) -> bool {
        if let Some(value) = self.key.as_ref().and_then(|key| event.value.get(key)) {
            let mut hasher = DefaultHasher::new();
            value.hash(&mut hasher);
            return hasher.finish().is_multiple_of(self.rate);
        }
        let keep = self.counted.is_multiple_of(self.rate);
        self.counted += 1;
        keep
    }
}

#[cfg(test)]
mod tests {
    use vrl::value::Value;

    use super::*;

    fn event(fields: &[(&str, Value)]) -> Event {
        Event {
            value: Value::Object(
                fields
                    .iter()
                    .map(|(name, value)| ((*name).into(), value.clone()))
                    .collect(),
            ),
        }
    }

    #[test]
    fn counting_keeps_the_first_and_then_every_rate_th() {
        let mut sampler = Sampler::new(&SampleConfig {
            rate: 3,
            key_field: None,
        })
        .unwrap();
        let kept: Vec<bool> = (0..7).map(|_| sampler.keep(&event(&[]))).collect();
        assert_eq!(kept, [true, false, false, true, false, false, true]);
    }

    #[test]
    fn a_key_decides_for_every_event_with_its_value() {
        let mut sampler = Sampler::new(&SampleConfig {
            rate: 4,
            key_field: Some("user.id".to_owned()),
        })
        .unwrap();
        let with_key = |id: i64| {
            event(&[(
                "user",
                Value::from(vrl::btreemap! {"id" => Value::from(id)}),
            )])
        };
        let mut kept_keys = 0;
        for id in 0..400 {
            let first = sampler.keep(&with_key(id));
            assert!(
                (0..3).all(|_| sampler.keep(&with_key(id)) == first),
                "key {id} decided once"
            );
            kept_keys += usize::from(first);
        }
        assert!((50..150).contains(&kept_keys), "about 1 in 4: {kept_keys}");
    }
}
