//! Benchmark figures: per solver, the median over seeds of a quantity as a line and its 20–80 %
//! quantile band as a translucent area, on a logarithmic y axis; written as SVG and as PNG (the
//! bitmap backend draws into an RGB buffer that the `png` crate encodes). Text uses the font
//! bundled and registered by [`crate::plot`], so both formats render without system fonts.

use crate::plot::{format_tick, register_font, COLORS, FONT};
use ab_glyph::{Font, FontRef, ScaleFont};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters_backend::{
    text_anchor::{HPos, VPos},
    BackendColor, BackendCoord, BackendTextStyle, DrawingErrorKind, FontTransform,
};
use std::path::Path;

/// One curve with its band, sampled on a common axis `x`.
pub struct Band {
    /// Legend label.
    pub label: String,
    /// Colour index.
    pub group: usize,
    /// Abscissae.
    pub x: Vec<f64>,
    /// Median at each abscissa (NaN or `+∞`: no curve there; `≤ 0`: drawn at the axis floor).
    pub median: Vec<f64>,
    /// Lower edge of the band (20 % quantile).
    pub lo: Vec<f64>,
    /// Upper edge of the band (80 % quantile; `+∞` is drawn at the axis top).
    pub hi: Vec<f64>,
}

/// One panel (logarithmic y axis).
pub struct BandPanel {
    /// Title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// Curves.
    pub bands: Vec<Band>,
    /// Smallest value shown (0: none): lower values, such as `φ − φ*` at rounding level, are
    /// drawn at the axis floor instead of zigzagging over many empty decades.
    pub floor: f64,
}

/// Axis ranges: x over the points with a drawable median, y over every finite positive value,
/// snapped outwards to whole decades.
fn bounds(panel: &BandPanel) -> Option<((f64, f64), (f64, f64))> {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    let mut any = false;
    for b in &panel.bands {
        for i in 0..b.x.len() {
            let m = b.median[i];
            if !(b.x[i].is_finite() && m.is_finite()) {
                continue;
            }
            any = true;
            x0 = x0.min(b.x[i]);
            x1 = x1.max(b.x[i]);
            for v in [b.lo[i], m, b.hi[i]] {
                if v.is_finite() && v > 0.0 {
                    y0 = y0.min(v);
                    y1 = y1.max(v);
                }
            }
        }
    }
    if !any || y0 > y1 {
        return None;
    }
    let y0 = y0.max(panel.floor);
    let y1 = y1.max(y0);
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let y0 = 10f64.powf(y0.max(1e-300).log10().floor());
    let mut y1 = 10f64.powf(y1.log10().ceil());
    if y1 <= y0 * 1.0001 {
        y1 = y0 * 10.0;
    }
    Some(((x0, x1), (y0, y1)))
}

/// Contiguous index ranges where the median is drawable (finite).
fn segments(b: &Band) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for i in 0..=b.x.len() {
        let ok = i < b.x.len() && b.x[i].is_finite() && b.median[i].is_finite();
        match (ok, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    out
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &BandPanel,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let Some(((x0, x1), (y0, y1))) = bounds(panel) else {
        area.titled(&format!("{} (no data)", panel.title), ("sans-serif", 16))
            .map_err(|e| err(&e))?;
        return Ok(());
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(panel.x_label.as_str())
        .label_style(("sans-serif", 12))
        .x_label_formatter(&|v| format_tick(*v, false))
        .y_label_formatter(&|v| format_tick(*v, true))
        .draw()
        .map_err(|e| err(&e))?;
    let clamp = |v: f64| {
        if v.is_nan() || v <= y0 {
            y0
        } else {
            v.min(y1)
        }
    };
    for b in &panel.bands {
        let c = COLORS[b.group % COLORS.len()];
        for (k, seg) in segments(b).into_iter().enumerate() {
            let mut area_pts: Vec<(f64, f64)> =
                seg.clone().map(|i| (b.x[i], clamp(b.hi[i]))).collect();
            area_pts.extend(seg.clone().rev().map(|i| (b.x[i], clamp(b.lo[i]))));
            chart
                .draw_series(std::iter::once(Polygon::new(area_pts, c.mix(0.2).filled())))
                .map_err(|e| err(&e))?;
            let line: Vec<(f64, f64)> = seg.map(|i| (b.x[i], clamp(b.median[i]))).collect();
            let drawn = chart
                .draw_series(LineSeries::new(line, c.stroke_width(2)))
                .map_err(|e| err(&e))?;
            if k == 0 {
                drawn.label(b.label.as_str()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(|e| err(&e))?;
    Ok(())
}

/// Figure size for `n` panels in `cols` columns: 480 × 340 per panel plus a 40-pixel title.
fn size(n: usize, cols: usize) -> (u32, u32) {
    let cols = cols.max(1);
    let rows = n.div_ceil(cols).max(1);
    (480 * cols as u32, 340 * rows as u32 + 40)
}

fn draw_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    panels: &[BandPanel],
    cols: usize,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| e.to_string())?;
    let rows = panels.len().div_ceil(cols.max(1)).max(1);
    for (area, panel) in root.split_evenly((rows, cols.max(1))).iter().zip(panels) {
        draw_panel(area, panel)?;
    }
    Ok(())
}

/// Write the panels as an SVG file, `cols` panels a row.
pub fn write_svg(
    path: &Path,
    title: &str,
    panels: &[BandPanel],
    cols: usize,
) -> Result<(), String> {
    register_font();
    let root = SVGBackend::new(path, size(panels.len(), cols)).into_drawing_area();
    draw_figure(&root, title, panels, cols)?;
    root.present()
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// The bitmap backend with horizontal text placed glyph by glyph with each glyph's left side
/// bearing: plotters 0.3.7 draws ab_glyph outlines from the pen position without it, which
/// shifts narrow capitals ("I", "T") against their neighbours. The layout (width from advances
/// and kerning, height `size/1.24`, baseline at `size/2` from the box top) is plotters' own, so
/// label areas computed from [`DrawingBackend::estimate_text_size`] still fit. Rotated text and
/// other font families go to plotters' renderer.
struct GlyphText<'a> {
    inner: BitMapBackend<'a>,
    font: Option<FontRef<'static>>,
}

impl<'a> DrawingBackend for GlyphText<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }
    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }
    fn draw_line<S: plotters_backend::BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }
    fn draw_rect<S: plotters_backend::BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }
    fn draw_path<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_path(path, style)
    }
    fn draw_circle<S: plotters_backend::BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.blit_bitmap(pos, size, src)
    }
    fn estimate_text_size<TStyle: BackendTextStyle>(
        &self,
        text: &str,
        style: &TStyle,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        self.inner.estimate_text_size(text, style)
    }
    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let font = match &self.font {
            Some(f)
                if matches!(style.transform(), FontTransform::None)
                    && style.family().as_str() == "sans-serif" =>
            {
                f.clone()
            }
            _ => return self.inner.draw_text(text, style, pos),
        };
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let size = style.size() as f32;
        let scaled = font.as_scaled(size);
        let mut width = 0f32;
        let mut prev = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                width += scaled.kern(p, id);
            }
            width += scaled.h_advance(id);
            prev = Some(id);
        }
        let (w, h) = ((width as i32), (size / 1.24) as i32);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -w,
            HPos::Center => -w / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -h / 2,
            VPos::Bottom => -h,
        };
        let (x0, y0) = ((pos.0 + dx) as f32, (pos.1 + dy) as f32 + size / 2.0);
        let (bw, bh) = self.inner.get_size();
        let mut pen = 0f32;
        let mut prev = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                pen += scaled.kern(p, id);
            }
            prev = Some(id);
            let glyph = id.with_scale_and_position(size, ab_glyph::point(x0 + pen, y0));
            pen += scaled.h_advance(id);
            let Some(outline) = scaled.outline_glyph(glyph) else {
                continue;
            };
            let b = outline.px_bounds();
            let mut pixels = Vec::new();
            outline.draw(|x, y, coverage| {
                pixels.push((
                    b.min.x as i32 + x as i32,
                    b.min.y as i32 + y as i32,
                    coverage,
                ))
            });
            for (x, y, coverage) in pixels {
                if x >= 0 && y >= 0 && (x as u32) < bw && (y as u32) < bh && coverage > 0.0 {
                    self.inner.draw_pixel(
                        (x, y),
                        BackendColor {
                            alpha: color.alpha * coverage.min(1.0) as f64,
                            rgb: color.rgb,
                        },
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// Draw the panels into an 8-bit RGB buffer: `(width, height, pixels)`.
fn render_rgb(
    title: &str,
    panels: &[BandPanel],
    cols: usize,
) -> Result<(u32, u32, Vec<u8>), String> {
    register_font();
    let (w, h) = size(panels.len(), cols);
    let mut buf = vec![0u8; 3 * w as usize * h as usize];
    {
        let backend = GlyphText {
            inner: BitMapBackend::with_buffer(&mut buf, (w, h)),
            font: FontRef::try_from_slice(FONT).ok(),
        };
        let root = backend.into_drawing_area();
        draw_figure(&root, title, panels, cols)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok((w, h, buf))
}

/// Write the panels as a PNG file (8-bit RGB), `cols` panels a row.
pub fn write_png(
    path: &Path,
    title: &str,
    panels: &[BandPanel],
    cols: usize,
) -> Result<(), String> {
    let (w, h, buf) = render_rgb(title, panels, cols)?;
    let bytes = encode_png(w, h, &buf)?;
    std::fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Encode a `width × height` 8-bit RGB image (`rgb.len() == 3 · width · height`, row-major, top
/// row first) as a PNG file, with the `png` crate.
pub fn encode_png(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, String> {
    if width == 0 || height == 0 || rgb.len() != 3 * width as usize * height as usize {
        return Err(format!(
            "PNG: {} bytes do not form a {width} × {height} RGB image",
            rgb.len()
        ));
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| format!("PNG: header: {e}"))?;
    writer
        .write_image_data(rgb)
        .map_err(|e| format!("PNG: image data: {e}"))?;
    writer.finish().map_err(|e| format!("PNG: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn band(median: Vec<f64>) -> Band {
        let n = median.len();
        Band {
            label: "a".into(),
            group: 0,
            x: (0..n).map(|i| i as f64).collect(),
            lo: median.iter().map(|m| m / 2.0).collect(),
            hi: median.iter().map(|m| m * 2.0).collect(),
            median,
        }
    }

    #[test]
    fn segments_break_at_undrawable_medians_and_bounds_snap_to_decades() {
        let b = band(vec![f64::NAN, 1.0, 0.5, f64::INFINITY, 0.1, 0.05]);
        assert_eq!(segments(&b), vec![1..3, 4..6]);
        let p = BandPanel {
            title: "t".into(),
            x_label: "x".into(),
            bands: vec![b],
            floor: 0.0,
        };
        // Finite positive values span [0.025, 2] → decades [1e-2, 10]; x over drawable medians.
        let ((x0, x1), (y0, y1)) = bounds(&p).unwrap();
        assert_eq!((x0, x1), (1.0, 5.0));
        assert!((y0 - 1e-2).abs() < 1e-18 && (y1 - 10.0).abs() < 1e-12);
        let empty = BandPanel {
            title: "t".into(),
            x_label: "x".into(),
            bands: vec![band(vec![f64::NAN; 3])],
            floor: 0.0,
        };
        assert!(bounds(&empty).is_none());
        // A floor raises the bottom of the axis: values 1e-16 … 1 with floor 1e-8 → [1e-8, 1].
        let p = BandPanel {
            title: "t".into(),
            x_label: "x".into(),
            bands: vec![band(vec![1.0, 1e-16])],
            floor: 1e-8,
        };
        let (_, (y0, _)) = bounds(&p).unwrap();
        assert!((y0 - 1e-8).abs() < 1e-22, "{y0}");
    }

    fn demo_panels() -> Vec<BandPanel> {
        vec![BandPanel {
            title: "phi - phi* vs time".into(),
            x_label: "seconds".into(),
            bands: vec![band((0..50).map(|i| 0.8f64.powi(i)).collect())],
            floor: 0.0,
        }]
    }

    /// The bitmap holds the median line in the first colour, its band in the first colour mixed
    /// 20 % into white, and dark text; the rest is the white background.
    #[test]
    fn bitmap_shows_line_band_and_text() {
        let (w, h, buf) = render_rgb("title", &demo_panels(), 1).unwrap();
        assert_eq!((w, h), size(1, 1));
        let px: Vec<[u8; 3]> = buf.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
        let c = COLORS[0];
        let line = px.iter().filter(|p| **p == [c.0, c.1, c.2]).count();
        let mix = |a: u8| (0.2 * a as f64 + 0.8 * 255.0).round() as i32;
        let band = px
            .iter()
            .filter(|p| {
                (p[0] as i32 - mix(c.0)).abs() <= 2
                    && (p[1] as i32 - mix(c.1)).abs() <= 2
                    && (p[2] as i32 - mix(c.2)).abs() <= 2
            })
            .count();
        let dark = px.iter().filter(|p| p.iter().all(|&v| v < 64)).count();
        assert!(
            line > 300 && band > 1000 && dark > 500,
            "line {line} band {band} dark {dark}"
        );
    }

    /// Both formats are written; the PNG has the signature and the figure's pixel size.
    #[test]
    fn writes_svg_and_png() {
        let dir = std::env::temp_dir().join(format!("bilevel-figure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_svg(&dir.join("f.svg"), "title", &demo_panels(), 1).unwrap();
        write_png(&dir.join("f.png"), "title", &demo_panels(), 1).unwrap();
        let svg = std::fs::read_to_string(dir.join("f.svg")).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polygon"),
            "{}",
            &svg[..200]
        );
        // The PNG decodes to the figure's size and to exactly the pixels drawn.
        let (w, h, rgb) = decode(&std::fs::read(dir.join("f.png")).unwrap());
        assert_eq!((w, h), size(1, 1));
        let (rw, rh, drawn) = render_rgb("title", &demo_panels(), 1).unwrap();
        assert_eq!((rw, rh), (w, h));
        assert!(rgb == drawn, "decoded pixels differ from the drawn ones");
        // Corner pixels are the white background; some pixels are dark (text, axes).
        for (x, y) in [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)] {
            let i = 3 * (y as usize * w as usize + x as usize);
            assert_eq!(&rgb[i..i + 3], &[255, 255, 255], "pixel ({x}, {y})");
        }
        assert!(rgb.chunks_exact(3).any(|p| p.iter().all(|&v| v < 64)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Decode an 8-bit RGB PNG: `(width, height, pixels)`.
    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(
            (info.color_type, info.bit_depth),
            (png::ColorType::Rgb, png::BitDepth::Eight)
        );
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    /// A 3 × 2 image round-trips through the encoder and a decoder.
    #[test]
    fn png_round_trips_pixels() {
        let rgb: Vec<u8> = (0..18).map(|v| (v * 13) as u8).collect();
        let bytes = encode_png(3, 2, &rgb).unwrap();
        assert_eq!(
            &bytes[..8],
            &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]
        );
        assert_eq!(decode(&bytes), (3, 2, rgb));
    }

    #[test]
    fn png_rejects_a_buffer_of_the_wrong_size() {
        assert!(encode_png(2, 2, &[0; 11]).is_err());
        assert!(encode_png(0, 2, &[]).is_err());
    }
}
