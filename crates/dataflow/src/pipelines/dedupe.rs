//! `dedupe`: drops events whose chosen fields were seen among the last
//! `cache.num_events` distinct events, remembered in a bounded LRU cache.
//!
//! Here too: the `dedupe` `conf`, with its defaults, its checks and its build.

use std::{
    collections::{BTreeMap, HashMap},
    hash::Hash,
};

use datascale_core::{
    component::{BuildError, ComponentTask, PipelineContext},
    event::Event,
};
use serde::{Deserialize, Serialize};
use vrl::{path::OwnedValuePath, value::Value};

use super::{PipelineType, check_field_paths, field_path, keep_where};
use crate::{Problems, TypeConf, invalid};

/// `dedupe`: drops events whose fields were seen in the last `cache.num_events` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// Which fields make two events the same.
    pub fields: DedupeFields,
    /// How many recent events are remembered.
    #[serde(default)]
    pub cache: DedupeCache,
}

/// `dedupe.fields`: compare these fields, or all but these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DedupeFields {
    /// Only these fields.
    Match(Vec<String>),
    /// All fields but these.
    Ignore(Vec<String>),
}

/// `dedupe.cache`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeCache {
    /// How many recent events are remembered.
    #[serde(default = "default_dedupe_cache_events")]
    pub num_events: usize,
}

impl Default for DedupeCache {
    fn default() -> Self {
        Self {
            num_events: default_dedupe_cache_events(),
        }
    }
}

fn default_dedupe_cache_events() -> usize {
    5_000
}

impl PipelineType for DedupeConfig {
    fn build(&self, name: &str, context: PipelineContext) -> Result<ComponentTask, BuildError> {
        let mut deduper = Deduper::new(self).map_err(invalid(name))?;
        Ok(keep_where(context, move |event| deduper.keep(event)))
    }
}

impl TypeConf for DedupeConfig {
    fn check(&self, problems: &mut Problems) {
        let (kind, fields) = match &self.fields {
            DedupeFields::Match(fields) => ("match", fields),
            DedupeFields::Ignore(fields) => ("ignore", fields),
        };
        let paths = fields
            .iter()
            .enumerate()
            .map(|(index, field)| (format!("fields.{kind}[{index}]"), field.as_str()));
        check_field_paths(paths, problems);
        if matches!(self.fields, DedupeFields::Match(_)) && fields.is_empty() {
            problems.add("fields.match", "name at least one field");
        }
        if self.cache.num_events == 0 {
            problems.add("cache.num_events", "must be at least 1");
        }
    }
}

/// What makes two events the same: the value of each matched field (`None`
/// when the event lacks it), or, with `ignore`, the one event less those fields.
type Key = Vec<Option<Value>>;

/// The state of a `dedupe`.
struct Deduper {
    fields: Fields,
    recent: RecentKeys<Key>,
}

enum Fields {
    Match(Vec<OwnedValuePath>),
    Ignore(Vec<OwnedValuePath>),
}

impl Deduper {
    /// A dedupe for `config`; fails when a field is not a field path.
    pub fn new(config: &DedupeConfig) -> Result<Self, String> {
        let parse = |fields: &[String]| -> Result<Vec<_>, String> {
            fields.iter().map(|field| field_path(field)).collect()
        };
        let fields = match &config.fields {
            DedupeFields::Match(fields) => Fields::Match(parse(fields)?),
            DedupeFields::Ignore(fields) => Fields::Ignore(parse(fields)?),
        };
        Ok(Self {
            fields,
            recent: RecentKeys::new(config.cache.num_events),
        })
    }

    /// Whether `event` is new among the recent ones; it becomes the most recent.
    pub fn keep(&mut self, event: &Event) -> bool {
        let key = match &self.fields {
            Fields::Match(paths) => paths
                .iter()
                .map(|path| event.value.get(path).cloned())
                .collect(),
            Fields::Ignore(paths) => {
                let mut value = event.value.clone();
                for path in paths {
                    value.remove(path, false);
                }
                vec![Some(value)]
            }
        };
        !self.recent.touch(key)
    }
}

/// The last `capacity` distinct keys, least recently seen first out.
struct RecentKeys<K> {
    capacity: usize,
    /// Each key and when it was last seen.
    seen: HashMap<K, u64>,
    /// The same keys by when they were last seen.
    by_age: BTreeMap<u64, K>,
    clock: u64,
}

impl<K: Hash + Eq + Clone> RecentKeys<K> {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            seen: HashMap::new(),
            by_age: BTreeMap::new(),
            clock: 0,
        }
    }

    /// Records `key` as the most recent; true when it was already there.
    fn touch(&mut self, key: K) -> bool {
        self.clock += 1;
        let known = match self.seen.get_mut(&key) {
            Some(last) => {
                self.by_age.remove(last);
                *last = self.clock;
                true
            }
            None => {
                self.seen.insert(key.clone(), self.clock);
                false
            }
        };
        self.by_age.insert(self.clock, key);
        if self.seen.len() > self.capacity
            && let Some((_, oldest)) = self.by_age.pop_first()
        {
            self.seen.remove(&oldest);
        }
        known
    }
}

#[cfg(test)]
mod tests {
    use super::DedupeCache;
    use super::*;

    fn event(id: i64, noise: i64) -> Event {
        Event {
            value: Value::Object(
                [
                    ("id".into(), Value::from(id)),
                    ("noise".into(), Value::from(noise)),
                ]
                .into(),
            ),
        }
    }

    fn deduper(fields: DedupeFields, num_events: usize) -> Deduper {
        Deduper::new(&DedupeConfig {
            fields,
            cache: DedupeCache { num_events },
        })
        .unwrap()
    }

    #[test]
    fn matched_fields_decide_and_a_missing_field_differs_from_null() {
        let mut dedupe = deduper(DedupeFields::Match(vec!["id".into()]), 10);
        assert!(dedupe.keep(&event(1, 1)));
        assert!(!dedupe.keep(&event(1, 2)));
        assert!(dedupe.keep(&event(2, 1)));
        let null_id = Event {
            value: Value::Object([("id".into(), Value::Null)].into()),
        };
        assert!(dedupe.keep(&null_id));
        assert!(dedupe.keep(&Event::from_message("x", &origin())));
    }

    #[test]
    fn ignored_fields_do_not_count() {
        let mut dedupe = deduper(DedupeFields::Ignore(vec!["noise".into()]), 10);
        assert!(dedupe.keep(&event(1, 1)));
        assert!(!dedupe.keep(&event(1, 2)));
        assert!(dedupe.keep(&event(2, 2)));
    }

    #[test]
    fn only_the_last_num_events_keys_are_remembered() {
        let mut dedupe = deduper(DedupeFields::Match(vec!["id".into()]), 2);
        assert!(dedupe.keep(&event(1, 0)));
        assert!(dedupe.keep(&event(2, 0)));
        assert!(!dedupe.keep(&event(1, 0)), "1 is refreshed");
        assert!(dedupe.keep(&event(3, 0)), "2 is forgotten");
        assert!(!dedupe.keep(&event(1, 0)));
        assert!(dedupe.keep(&event(2, 0)));
        assert_eq!(dedupe.recent.seen.len(), 2);
        assert_eq!(dedupe.recent.by_age.len(), 2);
    }

    fn origin() -> datascale_core::event::Origin {
        datascale_core::event::Origin::new("h", "d", "s")
    }
}
