//! SVG plots of simulation curves.

use std::path::Path;

use plotters::prelude::*;

use federated::simulation::RoundMetrics;

use crate::VariantResult;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Draws test accuracy (left) and test loss (right) per round, one line per variant, and,
/// when a variant runs with DP, a third panel with ε spent after each round.
pub fn plot_curves(path: &Path, results: &[VariantResult]) -> anyhow::Result<()> {
    let with_dp = results
        .iter()
        .any(|r| r.rounds.iter().any(|m| m.dp_epsilon.is_some()));
    let panes = if with_dp { 3 } else { 2 };
    let root = SVGBackend::new(path, (550 * panes, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((1, panes as usize));
    let rounds = results
        .iter()
        .flat_map(|r| r.rounds.iter().map(|m| m.round))
        .max()
        .unwrap_or(1);
    let top = |pick: fn(&RoundMetrics) -> Option<f64>| {
        results
            .iter()
            .flat_map(|r| r.rounds.iter().filter_map(pick))
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(0.1)
            * 1.05
    };
    type Pick = fn(&RoundMetrics) -> Option<f64>;
    let panels: [(&str, f64, Pick, SeriesLabelPosition); 3] = [
        (
            "test accuracy",
            1.0,
            |m| Some(m.eval_accuracy),
            SeriesLabelPosition::LowerRight,
        ),
        (
            "test loss",
            top(|m| Some(m.eval_loss)),
            |m| Some(m.eval_loss),
            SeriesLabelPosition::UpperRight,
        ),
        (
            "privacy spent: ε after each round",
            top(|m| m.dp_epsilon),
            |m| m.dp_epsilon,
            SeriesLabelPosition::UpperLeft,
        ),
    ];
    for (area, (title, y_max, pick, legend)) in areas.iter().zip(panels) {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(1u64..rounds.max(2), 0f64..y_max)?;
        chart.configure_mesh().x_desc("round").draw()?;
        for (i, r) in results.iter().enumerate() {
            let points: Vec<(u64, f64)> = r
                .rounds
                .iter()
                .filter_map(|m| pick(m).map(|v| (m.round, v)))
                .collect();
            if points.is_empty() {
                continue;
            }
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(r.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(legend)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
