//! SVG plots of traces with plotters. Text is laid out with the bundled DejaVu Sans
//! (Bitstream Vera license, `assets/fonts/`), so no system font is needed.

use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

pub(crate) static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

pub(crate) fn register_font() {
    REGISTER.call_once(|| {
        // The bundled font is a valid TrueType file, so registration only fails on a corrupted
        // build; plotting then reports the font error itself.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// One curve.
pub struct Series {
    /// Legend label (an empty label adds no legend entry).
    pub label: String,
    /// Colour group: curves of one group (one solver's seeds) share a colour.
    pub group: usize,
    /// Points `(x, y)`; non-finite points (and non-positive ones on a log axis) are skipped.
    pub points: Vec<(f64, f64)>,
}

/// One panel of a figure.
pub struct Panel {
    /// Panel title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// Curves.
    pub series: Vec<Series>,
}

pub(crate) const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Most points drawn per curve: longer traces are thinned evenly (first and last kept), which
/// keeps SVG files small without visible change at this figure size.
const MAX_POINTS: usize = 300;

/// Every k-th point of `pts` (and the last), at most about `max` of them.
fn decimate(pts: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if pts.len() <= max {
        return pts.to_vec();
    }
    let step = pts.len().div_ceil(max);
    let mut out: Vec<(f64, f64)> = pts.iter().step_by(step).copied().collect();
    if let Some(&last) = pts.last() {
        if out.last() != Some(&last) {
            out.push(last);
        }
    }
    out
}

/// Tick label: `1e-6` style on log axes, at most four significant digits otherwise.
pub(crate) fn format_tick(v: f64, log: bool) -> String {
    if log {
        let e = v.log10().round();
        if (v / 10f64.powf(e) - 1.0).abs() < 1e-6 {
            return format!("1e{}", e as i64);
        }
        return format!("{v:.0e}");
    }
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e4 || v.abs() < 1e-3 {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn bounds(panel: &Panel) -> Option<((f64, f64), (f64, f64))> {
    let pts = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!panel.log_y || *y > 0.0));
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    let mut any = false;
    for &(x, y) in pts {
        any = true;
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !any {
        return None;
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if panel.log_y {
        // Snap to whole decades so that the axis always carries power-of-ten ticks.
        y0 = 10f64.powf(y0.max(1e-300).log10().floor());
        y1 = 10f64.powf(y1.log10().ceil());
        if y1 <= y0 * 1.0001 {
            y1 = y0 * 10.0;
        }
    } else if y1 <= y0 {
        y1 = y0 + 1.0;
        y0 -= 1.0;
    } else {
        let pad = 0.05 * (y1 - y0);
        y0 -= pad;
        y1 += pad;
    }
    Some(((x0, x1), (y0, y1)))
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
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
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&panel.title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(56);
    macro_rules! finish {
        ($chart:expr) => {{
            let mut chart = $chart;
            let log_y = panel.log_y;
            chart
                .configure_mesh()
                .x_desc(panel.x_label.as_str())
                .label_style(("sans-serif", 12))
                .x_label_formatter(&|v| format_tick(*v, false))
                .y_label_formatter(&|v| format_tick(*v, log_y))
                .draw()
                .map_err(|e| err(&e))?;
            for s in panel.series.iter() {
                let c = COLORS[s.group % COLORS.len()];
                let all: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite() && (!panel.log_y || *y > 0.0))
                    .collect();
                let pts = decimate(&all, MAX_POINTS);
                chart
                    .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                    .map_err(|e| err(&e))?
                    .label(s.label.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 12))
                .draw()
                .map_err(|e| err(&e))?;
        }};
    }
    if panel.log_y {
        finish!(builder
            .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
            .map_err(|e| err(&e))?);
    } else {
        finish!(builder
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(&e))?);
    }
    Ok(())
}

/// Write an SVG with the panels in a grid of `cols` columns.
pub fn write_svg(path: &Path, title: &str, panels: &[Panel], cols: usize) -> Result<(), String> {
    register_font();
    let cols = cols.max(1);
    let rows = panels.len().div_ceil(cols).max(1);
    let (w, h) = (480 * cols as u32, 340 * rows as u32 + 40);
    let root = SVGBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| e.to_string())?;
    let areas = root.split_evenly((rows, cols));
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, panel)?;
    }
    root.present()
        .map_err(|e| format!("writing {}: {e}", path.display()))
}
