//! Property tests of the Prometheus answer readers: whatever a server (or something posing
//! as one) sends, reading it never panics, a well-formed answer reads back exactly, and an
//! error's message stays short enough for a condition and an Event.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::fuzz::config;

/// The longest message a reader error may carry (it ends up in run status and Events).
const MAX_MESSAGE: usize = 1_024;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        prop_oneof![
            Just("NaN"),
            Just("+Inf"),
            Just("-Inf"),
            Just("1e309"),
            Just("-0"),
            Just("0x10"),
            Just(""),
            Just("success"),
            Just("vector"),
            Just("scalar"),
            Just("matrix"),
            Just(PART_LABEL),
            Just("requests"),
            Just("errors"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("metric".to_owned()),
                    Just("value".to_owned()),
                    Just("values".to_owned()),
                    Just(PART_LABEL.to_owned()),
                    any::<String>(),
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Answers shaped like Prometheus's envelope, with any status, type and result.
fn envelope() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just(json!("success")), Just(json!("error")), json_value()],
        prop_oneof![
            Just(json!("vector")),
            Just(json!("scalar")),
            Just(json!("matrix")),
            json_value()
        ],
        json_value(),
        prop::option::of(json_value()),
        prop::option::of(json_value()),
    )
        .prop_map(|(status, result_type, result, error_type, error)| {
            let mut v =
                json!({"status": status, "data": {"resultType": result_type, "result": result}});
            if let Some(t) = error_type {
                v["errorType"] = t;
            }
            if let Some(e) = error {
                v["error"] = e;
            }
            v
        })
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop_oneof![
            Just(PART_LABEL.to_owned()),
            "[a-z_]{1,8}".prop_map(String::from)
        ],
        prop_oneof![
            Just("requests".to_owned()),
            Just("errors".to_owned()),
            any::<String>()
        ],
        0..4,
    )
}

/// Prometheus spells sample values like Go's `FormatFloat(v, 'f', -1, 64)`; exponents are
/// read too.
fn spelled(v: f64, exponent: bool) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if exponent {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

fn check_message(e: &QueryError) -> Result<(), TestCaseError> {
    let m = e.to_string();
    prop_assert!(
        m.chars().count() <= MAX_MESSAGE,
        "{} chars: {}...",
        m.chars().count(),
        m.chars().take(200).collect::<String>()
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(3_000))]

    #[test]
    fn prop_any_bytes_are_read_without_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        for r in [parse_vector(&body).map(|_| ()), parse_result(&body).map(|_| ()), parse_matrix(&body).map(|_| ())] {
            if let Err(e) = r {
                check_message(&e)?;
            }
        }
    }

    #[test]
    fn prop_huge_answers_give_short_errors(
        n in 1_025usize..4_000,
        which in 0usize..5,
    ) {
        let big = "x".repeat(n);
        let body = match which {
            0 => json!({"status": "error", "errorType": big, "error": big}),
            1 => json!({"status": "success", "data": {"resultType": big, "result": []}}),
            2 => json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, big]}]}}),
            3 => json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [big]}]}}),
            _ => json!({"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, big]]}]}}),
        };
        let body = serde_json::to_vec(&body).unwrap();
        for r in [parse_vector(&body).map(|_| ()), parse_matrix(&body).map(|_| ())] {
            if let Err(e) = r {
                check_message(&e)?;
            }
        }
    }

    #[test]
    fn prop_well_formed_vectors_read_back(
        series in prop::collection::vec((labels(), any::<f64>(), any::<bool>(), -1e12f64..1e12), 0..6),
    ) {
        let result: Vec<Value> = series
            .iter()
            .map(|(l, v, e, t)| json!({"metric": l, "value": [t, spelled(*v, *e)]}))
            .collect();
        let body = serde_json::to_vec(&json!({"status": "success", "data": {"resultType": "vector", "result": result}})).unwrap();
        let got = parse_vector(&body).unwrap();
        prop_assert_eq!(got.len(), series.len());
        for ((gl, gv), (l, v, _, _)) in got.iter().zip(&series) {
            prop_assert_eq!(gl, l);
            prop_assert!(same(*gv, *v), "{} != {}", gv, v);
        }
        // Splitting by part: none is no data, one is its value (NaN is no data), more is a
        // query without sum().
        let tags = ["requests", "errors"];
        let answers = split(&got, &tags);
        for tag in tags {
            let mine: Vec<f64> = series
                .iter()
                .filter(|(l, ..)| l.get(PART_LABEL).map(String::as_str) == Some(tag))
                .map(|(_, v, ..)| *v)
                .collect();
            match (&answers, mine.as_slice()) {
                (Err(QueryError::TooManySeries { .. }), _) => {
                    prop_assert!(tags.iter().any(|t| series.iter().filter(|(l, ..)| l.get(PART_LABEL).map(String::as_str) == Some(*t)).count() > 1));
                }
                (Ok(a), []) => prop_assert!(matches!(a[tag], Answer::NoData(_))),
                (Ok(a), [v]) if v.is_nan() => prop_assert!(matches!(a[tag], Answer::NoData(_))),
                (Ok(a), [v]) => prop_assert_eq!(&a[tag], &Answer::Value(*v)),
                (other, many) => prop_assert!(false, "{} series for {}: {:?}", many.len(), tag, other),
            }
        }
    }

    #[test]
    fn prop_sample_values_read_back(v in any::<f64>(), exponent in any::<bool>()) {
        let got = parse_value(&spelled(v, exponent)).unwrap();
        prop_assert!(same(got, v), "{} read as {}", v, got);
    }

    #[test]
    fn prop_any_value_string_is_read_without_panic(s in prop_oneof!["[-+0-9.eEinfatyINFATY_x]{0,12}", any::<String>()]) {
        if let Err(e) = parse_value(&s) {
            check_message(&e)?;
        }
    }
}

proptest! {
    // Recursive JSON is the costly generator: fewer cases by default.
    #![proptest_config(config(2_000))]

    #[test]
    fn prop_any_envelope_is_read_without_panic(v in envelope(), tags in prop::collection::vec("[a-z]{0,8}", 0..4)) {
        let body = serde_json::to_vec(&v).unwrap();
        match parse_vector(&body) {
            Ok(series) => {
                let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                match split(&series, &tags) {
                    Ok(answers) => prop_assert!(answers.len() <= tags.len()),
                    Err(e) => check_message(&e)?,
                }
            }
            Err(e) => check_message(&e)?,
        }
        if let Err(e) = parse_matrix(&body) {
            check_message(&e)?;
        }
    }
}
