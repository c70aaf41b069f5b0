//! SVG plots of simulation curves.

use std::path::Path;

use plotters::prelude::*;

use crate::VariantResult;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Draws test accuracy (left) and test loss (right) per round, one line per variant.
pub fn plot_curves(path: &Path, results: &[VariantResult]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1100, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(550);
    let rounds = results
        .iter()
        .flat_map(|r| r.rounds.iter().map(|m| m.round))
        .max()
        .unwrap_or(1);
    let max_loss = results
        .iter()
        .flat_map(|r| r.rounds.iter().map(|m| m.eval_loss))
        .filter(|l| l.is_finite())
        .fold(0.0f64, f64::max)
        .max(0.1);
    type Pick = fn(&federated::simulation::RoundMetrics) -> f64;
    let panels: [(_, _, _, Pick, _); 2] = [
        (
            &left,
            "test accuracy",
            1.0,
            |m| m.eval_accuracy,
            SeriesLabelPosition::LowerRight,
        ),
        (
            &right,
            "test loss",
            max_loss * 1.05,
            |m| m.eval_loss,
            SeriesLabelPosition::UpperRight,
        ),
    ];
    for (area, title, y_max, pick, legend) in panels {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(1u64..rounds.max(2), 0f64..y_max)?;
        chart.configure_mesh().x_desc("round").draw()?;
        for (i, r) in results.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(
                    r.rounds.iter().map(|m| (m.round, pick(m))),
                    color.stroke_width(2),
                ))?
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
