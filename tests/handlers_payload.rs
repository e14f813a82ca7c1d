//! Payload decoding against pickles written by real Python 2.7 and Python 3 (every protocol
//! each supports), generated at test time by `tests/support/make_pickles.py`.

mod support;

use bucketq::payload::{decode, Format, Limits};

#[test]
fn every_python_pickle_decodes_or_fails_as_expected() {
    let cases = support::all_pickles();
    // Both interpreters, every protocol: 0-2 from 2.7, 0-5 from 3.x.
    for (python, protocols) in [("2.", 0..=2), ("3.", 0..=5)] {
        for p in protocols {
            assert!(
                cases
                    .iter()
                    .any(|c| c.python.starts_with(python) && c.protocol == p && c.name == "issue"),
                "no issue pickle from Python {python}x protocol {p}"
            );
        }
    }
    let mut checked = 0;
    for case in &cases {
        let label = format!(
            "{} (Python {}, protocol {})",
            case.name, case.python, case.protocol
        );
        let result = decode(&case.bytes, &Limits::default());
        match (&case.expect, &case.error) {
            (Some(expect), None) => {
                let decoded = result.unwrap_or_else(|e| panic!("{label}: {e}"));
                assert_eq!(
                    &serde_json::Value::Object(decoded.fields),
                    expect,
                    "{label}"
                );
                if case.protocol >= 2 {
                    assert_eq!(
                        decoded.format,
                        Format::Pickle {
                            protocol: case.protocol as u8
                        },
                        "{label}"
                    );
                }
            }
            (None, Some(phrase)) => {
                let err = result.expect_err(&label).to_string();
                assert!(
                    err.contains(phrase.as_str()),
                    "{label}: {err:?} lacks {phrase:?}"
                );
            }
            _ => panic!("{label}: malformed case"),
        }
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} cases");
}

#[test]
fn issue_dict_reads_the_same_from_every_producer() {
    let cases = support::all_pickles();
    let json = r#"{"nickname": "Testing", "to_email": "someone@example.com",
                    "subject": "测试邮件", "content": "仅仅是测试"}"#;
    let want = decode(json.as_bytes(), &Limits::default())
        .expect("json")
        .fields;
    assert_eq!(want["subject"], "测试邮件");
    for case in cases.iter().filter(|c| c.name.starts_with("issue")) {
        let got = decode(&case.bytes, &Limits::default())
            .unwrap_or_else(|e| panic!("{} {}: {e}", case.python, case.protocol))
            .fields;
        assert_eq!(
            got, want,
            "Python {} protocol {}",
            case.python, case.protocol
        );
    }
}
