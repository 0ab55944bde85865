//! Helpers shared by the harness and the `bilevel` CLI's configuration loading: the line of a
//! TOML key, the field named in a serde message, writing a seed into a table, and the number
//! format of Markdown tables.

/// The line where `key = …` is set (the last segment of a dotted field name), if it is.
pub fn find_key_line(text: &str, field: &str) -> Option<usize> {
    let key = field.rsplit('.').next()?.trim_matches('`');
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            t.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// The field named in a serde message such as "unknown field `radiuss`, expected …".
pub fn quoted_field(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let end = start + msg[start..].find('`')?;
    Some(&msg[start..end])
}

/// `table` with `seed = seed` when `T` accepts a `seed` key there, else unchanged.
pub fn with_seed<T: serde::de::DeserializeOwned>(table: &toml::Table, seed: u64) -> toml::Table {
    let mut t = table.clone();
    t.insert("seed".into(), toml::Value::Integer(seed as i64));
    if toml::Value::Table(t.clone()).try_into::<T>().is_ok() {
        t
    } else {
        table.clone()
    }
}

/// A number for a Markdown table: `—` for `None`, scientific notation for very small or large
/// magnitudes, no decimals from 100, three decimals otherwise.
pub fn fmt(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| {
        if v != 0.0 && (v.abs() < 1e-2 || v.abs() >= 1e7) {
            format!("{v:.2e}")
        } else if v.abs() >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.3}")
        }
    })
}
