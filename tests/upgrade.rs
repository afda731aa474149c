//! A stack applied by an earlier release must plan "No changes" after an upgrade. The fixtures are the reference
//! template of that release (commit 800b33f: the network tier only, `tests/fixtures/reference-v1.toml`) and what
//! it planned for it on an empty account (JSON plan format 1): every attribute of every resource as it created
//! them. Today's code must plan that same file the same way; the tiers added since are absent from it, and their
//! new settings (`[network] nat`) default to what the old release did. If today's desired attributes differ in any way (a tag
//! renamed, a default changed, an attribute added), every stack out there would plan a change on upgrade; this
//! test fails first. (Checked end to end when recorded: applied with 800b33f, then planned with this release:
//! "No changes".) Change the fixture only together with a migration story in the README.

use serde_json::Value;

#[test]
fn todays_plan_for_the_reference_template_creates_exactly_what_the_previous_release_did() {
    let fixture = crate::support::repo().join("tests/fixtures/plan-v1-reference-create.json");
    let old: Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    assert_eq!(old["format_version"], 1);

    let path = crate::support::repo().join("tests/fixtures/reference-v1.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let stack = webscale::spec::parse(&path, &text, &webscale::spec::RegionChoice::default()).unwrap();
    let plan = webscale::plan::diff(&stack.name, &stack.region, webscale::resources::desired(&stack), vec![]).unwrap();
    let new = serde_json::to_value(&plan).unwrap();

    let changes = |plan: &Value| -> Vec<(String, String, Value)> {
        let mut out: Vec<(String, String, Value)> = plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let attrs: serde_json::Map<String, Value> = c["attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| (a["name"].as_str().unwrap().to_string(), a["after"].clone()))
                    .collect();
                (
                    c["address"].as_str().unwrap().to_string(),
                    c["action"].as_str().unwrap().to_string(),
                    Value::Object(attrs),
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    let (before, after) = (changes(&old), changes(&new));
    assert_eq!(before.len(), after.len(), "the same resources");
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a, "{} is planned differently than by the previous release", b.0);
    }
    assert_eq!(old["summary"], new["summary"]);
    assert_eq!((old["stack"].clone(), old["region"].clone()), (new["stack"].clone(), new["region"].clone()));
}
