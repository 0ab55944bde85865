//! The problem catalogue: every registered problem has defaults whose name round-trips, whose
//! TOML parses back (also through the located parser), and which build (data-backed problems
//! where their data are present; otherwise the error says how to fetch them).

use bilevel_problems::{catalogue, ProblemConfig};

#[test]
fn every_problem_has_defaults_that_parse_back_and_build() {
    let names: Vec<&str> = catalogue().iter().map(|(n, _)| *n).collect();
    for (i, n) in names.iter().enumerate() {
        assert!(!names[..i].contains(n), "{n} registered twice");
    }
    assert!(ProblemConfig::with_defaults("no-such-problem").is_none());
    let mut built = 0;
    for (name, desc) in catalogue() {
        assert!(!desc.is_empty());
        let c = ProblemConfig::with_defaults(name).expect("every catalogue name has defaults");
        assert_eq!(c.name(), *name);
        let text = toml::to_string(&c).unwrap_or_else(|e| panic!("{name}: {e}"));
        let back: ProblemConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back, c, "{name}");
        let untagged: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("name ="))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            ProblemConfig::table_error(name, &untagged).is_none(),
            "{name}"
        );
        let e = ProblemConfig::table_error(name, &format!("not_a_parameter = 1\n{untagged}"))
            .expect("unknown key rejected");
        assert!(e.message().contains("not_a_parameter"), "{name}: {e}");
        match c.build() {
            Ok(b) => {
                assert_eq!(b.x0.len(), b.problem.dim_x(), "{name}");
                assert_eq!(b.y0.len(), b.problem.dim_y(), "{name}");
                built += 1;
            }
            Err(e) => {
                let m = e.to_string();
                assert!(m.contains("fetch"), "{name}: defaults fail to build: {m}");
            }
        }
    }
    // The closed-form problems (no data) always build.
    assert!(built >= 12, "only {built} problems built");
}
