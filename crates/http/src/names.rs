//! Names taken from a request (its path, its query or its body), checked as
//! they are read: a handler gets a name of the safe charset or never runs,
//! and the refusal names the kind of name, the name and what is wrong.

use std::{fmt, marker::PhantomData, ops::Deref};

use datascale_core::names::check_name;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error};

/// What a name names, for the refusal of a bad one.
pub trait NameKind {
    /// The word for it: `group`, `dataflow`, …
    const KIND: &'static str;
}

/// A name of the safe charset (see [`check_name`]), checked when read.
pub struct CheckedName<K> {
    name: String,
    kind: PhantomData<K>,
}

impl<K: NameKind> CheckedName<K> {
    /// `name`, when it is of the safe charset; else why not, naming the
    /// kind of name and the name.
    pub fn new(name: String) -> Result<Self, String> {
        check_name(&name).map_err(|why| format!("the {} name `{name}`: {why}", K::KIND))?;
        Ok(Self {
            name,
            kind: PhantomData,
        })
    }
}

impl<K> CheckedName<K> {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.name
    }
}

impl<K> Deref for CheckedName<K> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.name
    }
}

impl<K> Clone for CheckedName<K> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> fmt::Debug for CheckedName<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.name, f)
    }
}

impl<K> fmt::Display for CheckedName<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl<K> PartialEq<str> for CheckedName<K> {
    fn eq(&self, other: &str) -> bool {
        self.name == other
    }
}

impl<K> PartialEq<CheckedName<K>> for String {
    fn eq(&self, other: &CheckedName<K>) -> bool {
        *self == other.name
    }
}

impl<K> PartialEq<CheckedName<K>> for &str {
    fn eq(&self, other: &CheckedName<K>) -> bool {
        *self == other.name
    }
}

impl<K> From<CheckedName<K>> for String {
    fn from(name: CheckedName<K>) -> Self {
        name.name
    }
}

impl<K> Serialize for CheckedName<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name)
    }
}

impl<'de, K: NameKind> Deserialize<'de> for CheckedName<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(deserializer)?).map_err(D::Error::custom)
    }
}

macro_rules! name_kinds {
    ($($(#[$doc:meta])* $alias:ident, $kind:ident => $word:literal;)*) => {$(
        #[doc = concat!("Names a ", $word, ".")]
        #[derive(Debug)]
        pub enum $kind {}

        impl NameKind for $kind {
            const KIND: &'static str = $word;
        }

        $(#[$doc])*
        pub type $alias = CheckedName<$kind>;
    )*};
}

name_kinds! {
    /// A group's name.
    GroupName, Group => "group";
    /// A dataflow's name.
    DataflowName, Dataflow => "dataflow";
    /// A worker's id.
    WorkerId, Worker => "worker";
    /// A custom collector's name.
    CollectorName, Collector => "collector";
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, http::Request, routing::get};
    use tower::ServiceExt;

    use super::*;
    use crate::ApiPath;

    #[tokio::test]
    async fn a_bad_name_in_a_path_is_refused_before_the_handler_naming_it() {
        #[derive(Deserialize)]
        struct Path {
            group: GroupName,
        }
        let app = Router::new().route(
            "/{group}",
            get(|ApiPath(Path { group }): ApiPath<Path>| async move { group.to_string() }),
        );
        let answer = app
            .clone()
            .oneshot(Request::get("/-bad").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(answer.status(), 400);
        let body = axum::body::to_bytes(answer.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body["error"]["message"],
            "the group name `-bad`: a name starts with a letter or a digit"
        );
        let good = app
            .oneshot(Request::get("/edge").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(good.status(), 200);
    }

    #[test]
    fn a_good_name_is_read_and_a_bad_one_refused_with_its_kind() {
        let good: GroupName = serde_json::from_str("\"edge-1\"").unwrap();
        assert_eq!(good.as_str(), "edge-1");
        let bad = serde_json::from_str::<DataflowName>("\"-x\"").unwrap_err();
        assert!(
            bad.to_string()
                .starts_with("the dataflow name `-x`: a name starts with"),
            "{bad}"
        );
    }
}
