//! Who wrote a field, as the API server's `metadata.managedFields` records it: the one place
//! that reads the `fieldsV1` tree, for the checks that ask who last set a Deployment's
//! `spec.paused` or a route's `spec.rules`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

/// The managedFields entries that own `spec.<field>` (a top-level field of the spec).
pub fn owning_spec_field<'a>(
    meta: &'a ObjectMeta,
    field: &'a str,
) -> impl Iterator<Item = &'a ManagedFieldsEntry> + 'a {
    let key = format!("f:{field}");
    meta.managed_fields.iter().flatten().filter(move |m| {
        m.fields_v1
            .as_ref()
            .and_then(|f| f.0.get("f:spec"))
            .and_then(|s| s.get(&key))
            .is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_entries_that_own_the_field_are_returned() {
        let meta: ObjectMeta = serde_json::from_value(json!({"managedFields": [
            {"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:paused": {}}}},
            {"manager": "rollguard", "operation": "Apply", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:metadata": {"f:annotations": {}}, "f:spec": {"f:replicas": {}}}},
            {"manager": "status", "operation": "Update", "subresource": "status"},
        ]}))
        .expect("meta");
        let managers = |field| {
            owning_spec_field(&meta, field)
                .filter_map(|m| m.manager.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(managers("paused"), ["kubectl"]);
        assert_eq!(managers("replicas"), ["rollguard"]);
        assert!(managers("rules").is_empty());
    }
}
