//! A minimal PNG encoder for 8-bit RGB images (the buffer plotters' bitmap backend draws into),
//! so that PNG output needs no image crate: the signature, an `IHDR` chunk, one zlib-compressed
//! `IDAT` chunk (every scanline with filter type 0, "None") and `IEND`, each chunk closed by the
//! CRC-32 (ISO 3309 / ITU-T V.42, polynomial `0xEDB88320` reflected) of its type and data.

use std::io::Write;

/// The eight bytes every PNG file starts with.
pub const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// Encode a `width × height` RGB image (`rgb.len() == 3 · width · height`, row-major, top row
/// first) as a PNG file.
pub fn encode_rgb(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, String> {
    let row = 3 * width as usize;
    if width == 0 || height == 0 || rgb.len() != row * height as usize {
        return Err(format!(
            "PNG: {} bytes do not form a {width} × {height} RGB image",
            rgb.len()
        ));
    }
    let mut raw = Vec::with_capacity((row + 1) * height as usize);
    for line in rgb.chunks_exact(row) {
        raw.push(0); // filter type 0: the scanline as is
        raw.extend_from_slice(line);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw)
        .map_err(|e| format!("PNG: deflate: {e}"))?;
    let idat = z.finish().map_err(|e| format!("PNG: deflate: {e}"))?;
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    // Bit depth 8, colour type 2 (RGB), deflate compression, adaptive filtering, no interlace.
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = Vec::with_capacity(idat.len() + 64);
    out.extend_from_slice(&SIGNATURE);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    Ok(out)
}

/// Append one chunk: big-endian length, type, data, CRC-32 of type and data.
fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut h = crc32fast::Hasher::new();
    h.update(kind);
    h.update(data);
    out.extend_from_slice(&h.finalize().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Split a PNG into its chunks, checking lengths and CRCs.
    fn chunks(png: &[u8]) -> Vec<([u8; 4], Vec<u8>, u32)> {
        assert_eq!(&png[..8], &SIGNATURE);
        let mut at = 8;
        let mut out = Vec::new();
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = png[at + 4..at + 8].try_into().unwrap();
            let data = png[at + 8..at + 8 + len].to_vec();
            let crc = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
            out.push((kind, data, crc));
            at += 12 + len;
        }
        assert_eq!(at, png.len());
        out
    }

    /// A 3 × 2 image round-trips: the header fields, the CRC of `IEND` (the constant `AE426082`
    /// of every PNG) and the inflated scanlines, each with its filter byte 0.
    #[test]
    fn encodes_header_scanlines_and_crcs() {
        let rgb: Vec<u8> = (0..18).map(|v| (v * 13) as u8).collect();
        let png = encode_rgb(3, 2, &rgb).unwrap();
        let c = chunks(&png);
        assert_eq!(
            c.iter().map(|c| c.0).collect::<Vec<_>>(),
            vec![*b"IHDR", *b"IDAT", *b"IEND"]
        );
        assert_eq!(c[0].1, vec![0, 0, 0, 3, 0, 0, 0, 2, 8, 2, 0, 0, 0]);
        assert_eq!(c[2].2, 0xAE42_6082);
        for (kind, data, crc) in &c {
            let mut h = crc32fast::Hasher::new();
            h.update(kind);
            h.update(data);
            assert_eq!(h.finalize(), *crc);
        }
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&c[1].1[..])
            .read_to_end(&mut raw)
            .unwrap();
        let mut expected = vec![0u8];
        expected.extend_from_slice(&rgb[..9]);
        expected.push(0);
        expected.extend_from_slice(&rgb[9..]);
        assert_eq!(raw, expected);
        // The CRC implementation itself, on the standard check string.
        let mut h = crc32fast::Hasher::new();
        h.update(b"123456789");
        assert_eq!(h.finalize(), 0xCBF4_3926);
    }

    #[test]
    fn rejects_a_buffer_of_the_wrong_size() {
        assert!(encode_rgb(2, 2, &[0; 11]).is_err());
        assert!(encode_rgb(0, 2, &[]).is_err());
    }
}
