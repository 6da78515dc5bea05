//! `target/bench/chart.svg`: median batch latency against batch size, one
//! panel per workload, one line per runtime, both axes logarithmic.

use std::path::Path;

use plotters::prelude::*;

use crate::{report::Record, Result};

const SIZE: (u32, u32) = (1200, 520);

/// One colour per runtime name, stable across runs.
fn colour(runtime: &str) -> RGBColor {
    match runtime {
        "knitting-threads" => RGBColor(214, 39, 40),
        "tokio" => RGBColor(31, 119, 180),
        "tokio-mt" => RGBColor(23, 190, 207),
        "crossbeam" => RGBColor(44, 160, 44),
        "limit" => RGBColor(127, 127, 127),
        _ => RGBColor(148, 103, 189),
    }
}

/// Draws every workload of `records`, side by side, into `path`.
pub fn write(records: &[Record], path: &Path) -> Result<()> {
    let mut workloads: Vec<(&str, &str)> = Vec::new();
    for r in records {
        if !workloads.iter().any(|(id, _)| *id == r.workload) {
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
    let max_batch = points.iter().map(|r| r.batch).max().unwrap_or(1) as f64;
    let lowest = points.iter().map(|r| micros(r)).fold(f64::MAX, f64::min);
    let highest = points.iter().map(|r| micros(r)).fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (0.8..max_batch * 1.25).log_scale(),
            // Room above the highest line for the legend.
            (lowest / 2.0..highest * 12.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("batch (calls in flight)")
        .y_desc("median batch latency")
        .x_label_formatter(&|x| format!("{x:.0}"))
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
            .map(|r| (r.batch as f64, micros(r)))
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
