//! `target/bench/chart.svg`: one panel per workload of W1–W3, one line per
//! runtime, both axes logarithmic: median batch latency against batch size
//! (W1, W2), or against payload size for a size sweep (W3).

use std::path::Path;

use plotters::prelude::*;

use crate::{
    report::{bytes, Record},
    Result,
};

const SIZE: (u32, u32) = (1500, 520);

/// The workloads charted: the latency ones. Start-up (W6) and process
/// latency (W8) are a point or two each, read from the table.
const CHARTED: &[&str] = &["W1", "W2", "W3"];

/// One colour per runtime name, stable across runs.
fn colour(runtime: &str) -> RGBColor {
    match runtime {
        "knitting-threads" => RGBColor(214, 39, 40),
        "knitting-processes" => RGBColor(255, 127, 14),
        "knitting-processes-unrestricted" => RGBColor(188, 189, 34),
        "tokio" => RGBColor(31, 119, 180),
        "tokio-mt" => RGBColor(23, 190, 207),
        "crossbeam" => RGBColor(44, 160, 44),
        "procspawn" => RGBColor(140, 86, 75),
        "limit" => RGBColor(127, 127, 127),
        _ => RGBColor(148, 103, 189),
    }
}

/// Draws the charted workloads of `records`, side by side, into `path`.
pub fn write(records: &[Record], path: &Path) -> Result<()> {
    let mut workloads: Vec<(&str, &str)> = Vec::new();
    for r in records {
        if CHARTED.contains(&r.workload) && !workloads.iter().any(|(id, _)| *id == r.workload) {
            workloads.push((r.workload, r.title));
        }
    }
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, workloads.len().max(1)));
    for ((id, title), panel) in workloads.into_iter().zip(&panels) {
        let points: Vec<&Record> = records.iter().filter(|r| r.workload == id).collect();
        draw_panel(panel, &format!("{id}: {title}"), &points)?;
    }
    root.present()?;
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    points: &[&Record],
) -> Result<()> {
    let micros = |r: &Record| (r.median_ns as f64 / 1e3).max(1e-3);
    // A size sweep is drawn against size, anything else against batch.
    let sweep = points.iter().any(|r| r.bytes != points[0].bytes);
    let x = |r: &Record| if sweep { r.bytes } else { r.batch } as f64;
    let lowest_x = points.iter().map(|r| x(r)).fold(f64::MAX, f64::min);
    let highest_x = points.iter().map(|r| x(r)).fold(1.0, f64::max);
    let lowest = points.iter().map(|r| micros(r)).fold(f64::MAX, f64::min);
    let highest = points.iter().map(|r| micros(r)).fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(
            // Sizes are powers of two: so are their ticks.
            (lowest_x * 0.8..highest_x * 1.25)
                .log_scale()
                .base(if sweep { 2.0 } else { 10.0 }),
            // Room above the highest line for the legend.
            (lowest / 2.0..highest * 12.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc(if sweep {
            format!("payload size (batch {})", points[0].batch)
        } else {
            "batch (calls in flight)".to_owned()
        })
        .y_desc("median batch latency")
        .x_label_formatter(&|x| {
            if sweep {
                bytes(x.round() as usize)
            } else {
                format!("{x:.0}")
            }
        })
        .y_label_formatter(&|micros| tick(*micros))
        .draw()?;

    let mut runtimes: Vec<&str> = Vec::new();
    for r in points {
        if !runtimes.contains(&r.runtime) {
            runtimes.push(r.runtime);
        }
    }
    for runtime in runtimes {
        let series: Vec<(f64, f64)> = points
            .iter()
            .filter(|r| r.runtime == runtime)
            .map(|r| (x(r), micros(r)))
            .collect();
        let colour = colour(runtime);
        chart
            .draw_series(LineSeries::new(series, colour.stroke_width(2)).point_size(4))?
            .label(runtime)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// A tick label for a time in microseconds: "100 ns", "1 µs", "2.5 ms".
fn tick(micros: f64) -> String {
    let (value, unit) = if micros >= 1e6 {
        (micros / 1e6, "s")
    } else if micros >= 1e3 {
        (micros / 1e3, "ms")
    } else if micros >= 1.0 {
        (micros, "µs")
    } else {
        (micros * 1e3, "ns")
    };
    // `Display` of an f64 drops trailing zeros.
    format!("{} {unit}", (value * 100.0).round() / 100.0)
}

#[cfg(test)]
mod tests {
    use super::tick;

    #[test]
    fn tick_labels() {
        assert_eq!(tick(0.1), "100 ns");
        assert_eq!(tick(1.0), "1 µs");
        assert_eq!(tick(2500.0), "2.5 ms");
        assert_eq!(tick(1e6), "1 s");
    }
}
