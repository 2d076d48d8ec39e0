//! Watching rollguard's own kinds without letting one bad object stop the watch.
//!
//! An object the types cannot read (written under an older CRD version, or by hand through
//! a schema that allowed it) would fail the whole list it comes in, and a watch that relists
//! would fail the same way forever: every cache stays unsynced and nothing is reconciled.
//! Here each object is decoded on its own; one that does not decode is reported (log line
//! and `rollguard_undecodable_objects_total`) and left out of the cache.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// An object of kind `K` as the API server sent it: read, or only its metadata and why the
/// rest could not be read.
#[derive(Clone, Debug)]
pub enum Decoded<K> {
    Read(K),
    Unreadable {
        meta: Box<ObjectMeta>,
        error: String,
    },
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Decoded<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        match serde_json::from_value::<K>(value.clone()) {
            Ok(k) => Ok(Decoded::Read(k)),
            Err(e) => {
                let meta = value
                    .get("metadata")
                    .cloned()
                    .and_then(|m| serde_json::from_value(m).ok())
                    .unwrap_or_default();
                let meta = Box::new(meta);
                Ok(Decoded::Unreadable {
                    meta,
                    error: e.to_string(),
                })
            }
        }
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Decoded<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        match self {
            Decoded::Read(k) => k.meta(),
            Decoded::Unreadable { meta, .. } => meta,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Decoded::Read(k) => k.meta_mut(),
            Decoded::Unreadable { meta, .. } => meta,
        }
    }
}

/// A watch event with the unreadable objects taken out; `report` is told about each one.
pub fn readable<K>(
    event: watcher::Event<Decoded<K>>,
    report: &impl Fn(&ObjectMeta, &str),
) -> Option<watcher::Event<K>> {
    use watcher::Event;
    let read = |d: Decoded<K>| match d {
        Decoded::Read(k) => Some(k),
        Decoded::Unreadable { meta, error } => {
            report(&meta, &error);
            None
        }
    };
    match event {
        Event::Apply(d) => read(d).map(Event::Apply),
        Event::InitApply(d) => read(d).map(Event::InitApply),
        // A deleted object that was never read was never cached.
        Event::Delete(d) => read(d).map(Event::Delete),
        Event::Init => Some(Event::Init),
        Event::InitDone => Some(Event::InitDone),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RolloutPolicy;
    use serde_json::json;

    #[test]
    fn a_list_with_one_unreadable_object_still_yields_the_others() {
        let good = json!({
            "apiVersion": "rollguard.dev/v1alpha1", "kind": "RolloutPolicy",
            "metadata": {"name": "good", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "traffic": {"replicas": {}},
                     "analysis": {"requests": "r", "errors": "e"}}
        });
        let bad = json!({
            "apiVersion": "rollguard.dev/v1alpha1", "kind": "RolloutPolicy",
            "metadata": {"name": "old", "namespace": "shop"},
            "spec": {"selector": "app=web", "analysis": 5}
        });
        let items: Vec<Decoded<RolloutPolicy>> =
            serde_json::from_value(json!([good, bad])).expect("the list decodes");
        assert!(
            matches!(&items[0], Decoded::Read(p) if p.metadata.name.as_deref() == Some("good"))
        );
        match &items[1] {
            Decoded::Unreadable { meta, error } => {
                assert_eq!(meta.name.as_deref(), Some("old"));
                assert!(error.contains("invalid type"), "{error}");
            }
            other => panic!("expected unreadable, got {other:?}"),
        }
        // Unreadable objects leave the event stream; the rest pass as they were.
        let seen = std::cell::RefCell::new(vec![]);
        let report = |m: &ObjectMeta, _: &str| seen.borrow_mut().push(m.name.clone());
        let mut out = vec![];
        for d in items {
            out.extend(readable(watcher::Event::InitApply(d), &report));
        }
        assert_eq!(out.len(), 1);
        assert_eq!(*seen.borrow(), vec![Some("old".to_string())]);
        assert!(matches!(
            readable::<RolloutPolicy>(watcher::Event::InitDone, &report),
            Some(watcher::Event::InitDone)
        ));
    }
}
