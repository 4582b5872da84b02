//! The closing lines of `bench all`: one line per figure, `ratio <name> <value>` or
//! `value <name> <value> <unit>`, collected from every benchmark and printed last.

use std::fmt;

/// One reported figure.
pub enum Figure {
    /// Ours divided by the peer's (or (b)/(a)): dimensionless.
    Ratio(String, f64),
    /// A measured quantity with its unit.
    Value(String, f64, &'static str),
}

impl Figure {
    pub fn ratio(name: impl Into<String>, value: f64) -> Self {
        Figure::Ratio(name.into(), value)
    }

    pub fn value(name: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Figure::Value(name.into(), value, unit)
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Figure::Ratio(name, value) => write!(f, "ratio {name} {value:.3}"),
            Figure::Value(name, value, unit) if value.fract() == 0.0 && value.abs() < 1e15 => {
                write!(f, "value {name} {value:.0} {unit}")
            }
            Figure::Value(name, value, unit) => write!(f, "value {name} {value:.2} {unit}"),
        }
    }
}

/// `a / b`, with 0/0 = 0 and x/0 = infinity.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        if a == 0.0 { 0.0 } else { f64::INFINITY }
    } else {
        a / b
    }
}

/// The median of `values` (upper median for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The spread of repeated measurements, as (max - min) / median, for the noise reports.
pub fn spread(values: &[f64]) -> f64 {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    ratio(max - min, median(values.to_vec()))
}
