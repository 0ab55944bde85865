//! Minimal NumPy `.npy` (format 1.0) writer for `f64` arrays, used by `bilevel hypergrad
//! --export` so that other implementations (the JAX check under `benchmarks/`) read exactly
//! the arrays our oracles use.

use std::io::Write;
use std::path::Path;

/// Encode a little-endian `f64` array of the given shape (row-major) as `.npy` bytes.
///
/// Header: magic `\x93NUMPY`, version 1.0, a little-endian u16 header length, then the Python
/// dict literal padded with spaces and a final newline so that the data starts at a multiple
/// of 64 bytes.
pub fn encode_f64(shape: &[usize], data: &[f64]) -> Vec<u8> {
    debug_assert_eq!(shape.iter().product::<usize>(), data.len());
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {dims}, }}");
    let unpadded = 10 + header.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 8 * data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Write an `f64` array as `path` (via a temporary file and a rename).
pub fn write_f64(path: &Path, shape: &[usize], data: &[f64]) -> std::io::Result<()> {
    let tmp = path.with_extension("npy.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&encode_f64(shape, data))?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_parsable() {
        let b = encode_f64(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -0.5]);
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert!(header.contains("'shape': (2, 3)"), "{header}");
        assert!(header.ends_with('\n'));
        let last = f64::from_le_bytes(b[b.len() - 8..].try_into().unwrap());
        assert_eq!(last, -0.5);
        assert_eq!(b.len(), 10 + hlen + 48);
        let v = encode_f64(&[4], &[0.0; 4]);
        let hlen = u16::from_le_bytes([v[8], v[9]]) as usize;
        assert!(std::str::from_utf8(&v[10..10 + hlen])
            .unwrap()
            .contains("'shape': (4,)"));
    }
}
