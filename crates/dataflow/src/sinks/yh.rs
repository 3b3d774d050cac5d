//! The `yh` sink: events to an event set on the manager or an external
//! platform, sent by the `http` sink's machinery (see `http`). Here: its
//! `conf`, its checks and its build.

use datascale_core::component::{BuildError, ComponentTask, SinkContext};
use serde::{Deserialize, Serialize};

use super::{SinkType, http::HttpSink, url_problem};
use crate::{Problems, TypeConf, invalid};

/// `yh`: writes events to an event set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YhConfig {
    /// The event set.
    pub event_set: String,
    /// An external platform's URL; the worker's manager when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The token for `endpoint`; the worker's own credential when absent.
    #[serde(default)]
    pub token: Option<String>,
}

impl SinkType for YhConfig {
    fn build(&self, name: &str, context: SinkContext) -> Result<ComponentTask, BuildError> {
        let sink =
            HttpSink::for_event_set(self, context.managers.as_ref()).map_err(invalid(name))?;
        Ok(Box::pin(sink.run(context)))
    }
}

impl TypeConf for YhConfig {
    fn check(&self, problems: &mut Problems) {
        if let Err(why) = datascale_core::names::check_name(&self.event_set) {
            problems.add("event_set", why);
        }
        if let Some(why) = self.endpoint.as_deref().and_then(url_problem) {
            problems.add("endpoint", why);
        }
    }
}
