//! IDX (MNIST, Fashion-MNIST): an images file (magic 2051, `u8` pixels) and a labels file
//! (magic 2049), big-endian headers, gzipped or not.

use std::path::Path;

use crate::error::{DataError, Result};
use crate::text::{maybe_gunzip, read_file};
use crate::Dataset;

const IMAGES_MAGIC: u32 = 2051;
const LABELS_MAGIC: u32 = 2049;

/// Reads an images and a labels file (each gzipped or not); see [`load_idx`].
pub fn load_idx_files(
    images: impl AsRef<Path>,
    labels: impl AsRef<Path>,
    classes: Option<usize>,
) -> Result<Dataset> {
    let (img, img_name) = read_file(images.as_ref())?;
    let (lab, lab_name) = read_file(labels.as_ref())?;
    load_idx(&img, &img_name, &lab, &lab_name, classes)
}

/// Parses an IDX images file and labels file into a data set with pixels scaled to `[0, 1]`
/// (`p = rows × cols`, row-major).
///
/// `classes`: the class count every label must stay below (`Some(10)` for MNIST); `None` uses
/// `max label + 1`. Errors: wrong magic (naming the value), truncated data (byte offset and
/// expected size), different image and label counts, label out of range (byte offset).
/// Trailing bytes after the announced data are ignored.
pub fn load_idx(
    images: &[u8],
    images_name: &str,
    labels: &[u8],
    labels_name: &str,
    classes: Option<usize>,
) -> Result<Dataset> {
    let images = maybe_gunzip(images, images_name)?;
    let labels = maybe_gunzip(labels, labels_name)?;
    let ih = header(&images, images_name, IMAGES_MAGIC, 3)?;
    let lh = header(&labels, labels_name, LABELS_MAGIC, 1)?;
    let (count, rows, cols) = (ih[0], ih[1], ih[2]);
    if count != lh[0] {
        return Err(DataError::CountMismatch {
            images_name: images_name.to_string(),
            images: count,
            labels_name: labels_name.to_string(),
            labels: lh[0],
        });
    }
    let p = rows * cols;
    require(
        &images,
        images_name,
        16u64.saturating_add(count.saturating_mul(p)),
    )?;
    require(&labels, labels_name, 8 + count)?;
    let (n, p) = (count as usize, p as usize);
    let label_bytes = &labels[8..8 + n];
    let limit = classes.unwrap_or_else(|| label_bytes.iter().max().map_or(0, |&m| m as usize + 1));
    if let Some(pos) = label_bytes.iter().position(|&l| l as usize >= limit) {
        return Err(DataError::LabelOutOfRange {
            source_name: labels_name.to_string(),
            offset: 8 + pos as u64,
            label: label_bytes[pos] as u32,
            classes: limit,
        });
    }
    let features = images[16..16 + n * p]
        .iter()
        .map(|&b| b as f64 / 255.0)
        .collect();
    Ok(Dataset {
        features,
        labels: label_bytes.iter().map(|&l| l as u32).collect(),
        n,
        p,
        classes: limit,
        feature_names: None,
        class_names: (0..limit).map(|c| c.to_string()).collect(),
    })
}

/// Checks the magic and returns the `dims` big-endian `u32` sizes after it.
fn header(bytes: &[u8], name: &str, magic: u32, dims: usize) -> Result<Vec<u64>> {
    let len = 4 + 4 * dims;
    require(bytes, name, len as u64)?;
    let word = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let found = word(0);
    if found != magic {
        return Err(DataError::BadMagic {
            source_name: name.to_string(),
            expected: magic,
            found,
        });
    }
    Ok((0..dims).map(|d| word(4 + 4 * d) as u64).collect())
}

fn require(bytes: &[u8], name: &str, expected: u64) -> Result<()> {
    if (bytes.len() as u64) < expected {
        return Err(DataError::Truncated {
            source_name: name.to_string(),
            offset: bytes.len() as u64,
            expected,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [IMAGES_MAGIC, n, rows, cols] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v.extend_from_slice(pixels);
        v
    }

    fn labels(l: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
        v.extend_from_slice(&(l.len() as u32).to_be_bytes());
        v.extend_from_slice(l);
        v
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn plain_and_gzip_round_trip() {
        let img = images(2, 1, 2, &[0, 255, 51, 102]);
        let lab = labels(&[3, 9]);
        let plain = load_idx(&img, "i", &lab, "l", Some(10)).unwrap();
        assert_eq!((plain.n, plain.p, plain.classes), (2, 2, 10));
        assert_eq!(plain.features, vec![0.0, 1.0, 0.2, 0.4]);
        assert_eq!(plain.labels, vec![3, 9]);
        let gz = load_idx(&gzip(&img), "i.gz", &gzip(&lab), "l.gz", Some(10)).unwrap();
        assert_eq!(gz, plain);
        let inferred = load_idx(&img, "i", &gzip(&lab), "l.gz", None).unwrap();
        assert_eq!(inferred.classes, 10);
    }

    #[test]
    fn bad_magic_names_value() {
        let mut img = images(1, 1, 1, &[0]);
        img[3] = 0x01; // 2051 = 0x0803 -> 0x0801 = 2049
        let e = load_idx(&img, "imgs.idx", &labels(&[0]), "l", None).unwrap_err();
        assert!(matches!(
            e,
            DataError::BadMagic {
                found: 2049,
                expected: 2051,
                ..
            }
        ));
        assert!(
            e.to_string().contains("imgs.idx") && e.to_string().contains("2049"),
            "{e}"
        );
    }

    #[test]
    fn truncated_names_offset_and_size() {
        let img = images(2, 2, 2, &[1, 2, 3, 4, 5]);
        let e = load_idx(&img, "imgs.idx", &labels(&[0, 1]), "l", None).unwrap_err();
        assert!(matches!(
            e,
            DataError::Truncated {
                offset: 21,
                expected: 24,
                ..
            }
        ));
        let msg = e.to_string();
        assert!(
            msg.contains("imgs.idx") && msg.contains("21") && msg.contains("24"),
            "{msg}"
        );
        let e = load_idx(&img[..10], "imgs.idx", &labels(&[0]), "l", None).unwrap_err();
        assert!(matches!(
            e,
            DataError::Truncated {
                offset: 10,
                expected: 16,
                ..
            }
        ));
        let mut lab = labels(&[0, 1]);
        lab.pop();
        let e = load_idx(&images(2, 1, 1, &[0, 0]), "i", &lab, "labs", None).unwrap_err();
        assert!(matches!(
            e,
            DataError::Truncated {
                offset: 9,
                expected: 10,
                ..
            }
        ));
        assert!(e.to_string().contains("labs"));
    }

    #[test]
    fn count_mismatch() {
        let e = load_idx(&images(2, 1, 1, &[0, 0]), "i", &labels(&[0]), "l", None).unwrap_err();
        assert!(matches!(
            e,
            DataError::CountMismatch {
                images: 2,
                labels: 1,
                ..
            }
        ));
        assert!(e.to_string().contains("i has 2") && e.to_string().contains("l has 1"));
    }

    #[test]
    fn label_out_of_range() {
        let e = load_idx(
            &images(2, 1, 1, &[0, 0]),
            "i",
            &labels(&[1, 10]),
            "labs",
            Some(10),
        )
        .unwrap_err();
        assert!(matches!(
            e,
            DataError::LabelOutOfRange {
                offset: 9,
                label: 10,
                classes: 10,
                ..
            }
        ));
        assert!(e.to_string().contains("labs") && e.to_string().contains("offset 9"));
    }

    #[test]
    fn corrupt_gzip_is_io_error() {
        let e = load_idx(&[0x1f, 0x8b, 0, 1], "i.gz", &labels(&[]), "l", None).unwrap_err();
        assert!(matches!(e, DataError::Io { .. }));
        assert!(e.to_string().starts_with("i.gz:"));
    }
}
