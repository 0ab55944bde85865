//! Shared input handling: transparent gzip, UTF-8 lines with 1-based numbers.

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use crate::error::{clip, DataError, Result};

/// Decompresses `bytes` when they start with the gzip magic `1f 8b`.
pub(crate) fn maybe_gunzip<'a>(bytes: &'a [u8], name: &str) -> Result<Cow<'a, [u8]>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|source| DataError::Io {
                source_name: name.to_string(),
                source,
            })?;
        Ok(Cow::Owned(out))
    } else {
        Ok(Cow::Borrowed(bytes))
    }
}

/// Reads a whole file; errors name the path.
pub(crate) fn read_file(path: &Path) -> Result<(Vec<u8>, String)> {
    let name = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => Ok((bytes, name)),
        Err(source) => Err(DataError::Io {
            source_name: name,
            source,
        }),
    }
}

/// The lines of `bytes` as `(1-based number, text without '\r\n')`; non-UTF-8 lines are errors.
pub(crate) fn lines<'a>(
    bytes: &'a [u8],
    name: &'a str,
) -> impl Iterator<Item = Result<(usize, &'a str)>> + 'a {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(move |_| !bytes.is_empty())
        .map(move |(i, raw)| {
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            match std::str::from_utf8(raw) {
                Ok(s) => Ok((i + 1, s)),
                Err(e) => Err(DataError::Invalid {
                    source_name: name.to_string(),
                    line: i + 1,
                    column: Some(e.valid_up_to() + 1),
                    field: "<line>".to_string(),
                    text: clip(&String::from_utf8_lossy(raw)),
                    reason: "not valid UTF-8".to_string(),
                }),
            }
        })
}

/// Strips one pair of matching `'…'` or `"…"` quotes.
pub(crate) fn unquote(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// Checks that `n × p` stays within [`MAX_ELEMENTS`](crate::MAX_ELEMENTS).
pub(crate) fn check_size(n: usize, p: usize, name: &str, line: usize) -> Result<()> {
    let elements = n as u128 * p as u128;
    if elements > crate::MAX_ELEMENTS as u128 {
        return Err(DataError::TooLarge {
            source_name: name.to_string(),
            line,
            elements,
            limit: crate::MAX_ELEMENTS,
        });
    }
    Ok(())
}
