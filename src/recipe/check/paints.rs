//! Checking paints and filters: colour stops, disc fields, filter kinds and their ranges.

use super::{count_range, range, Checker};

use crate::protocol::JobError;
use crate::recipe::{invalid, Discs, Filter, Paint, Stop};

impl Checker<'_> {
    pub(super) fn stops(&self, path: &str, stops: &[Stop]) -> Result<(), JobError> {
        count_range(path, stops.len(), 2, 16, "stops")?;
        let mut last = 0.0;
        for (i, s) in stops.iter().enumerate() {
            let p = format!("{path}[{i}].at");
            range(&p, s.at, 0.0, 1.0)?;
            if s.at < last {
                return Err(invalid(&p, "stops must be in increasing `at` order"));
            }
            last = s.at;
        }
        Ok(())
    }

    pub(super) fn paint(&self, path: &str, paint: &Paint) -> Result<(), JobError> {
        match paint {
            Paint::Solid(_) => Ok(()),
            Paint::Linear(l) => {
                range(&format!("{path}.linear.angle"), l.angle, -360.0, 360.0)?;
                self.stops(&format!("{path}.linear.stops"), &l.stops)
            }
            Paint::Radial(r) => {
                let p = format!("{path}.radial");
                range(&format!("{p}.center[0]"), r.center[0], -1.0, 2.0)?;
                range(&format!("{p}.center[1]"), r.center[1], -1.0, 2.0)?;
                range(&format!("{p}.radius"), r.radius, 0.01, 4.0)?;
                self.stops(&format!("{p}.stops"), &r.stops)
            }
            Paint::Noise(n) => {
                let p = format!("{path}.noise");
                count_range(&format!("{p}.colors"), n.colors.len(), 2, 8, "colours")?;
                range(&format!("{p}.scale"), n.scale, 4.0, 4096.0)?;
                range(&format!("{p}.octaves"), n.octaves as f32, 1.0, 6.0)
            }
            Paint::Bokeh(d) => self.discs(&format!("{path}.bokeh"), d),
            Paint::Stars(d) => self.discs(&format!("{path}.stars"), d),
            Paint::Dots(d) => {
                let p = format!("{path}.dots");
                range(&format!("{p}.spacing"), d.spacing, 4.0, 1024.0)?;
                range(&format!("{p}.radius"), d.radius, 0.5, d.spacing / 2.0)
            }
            Paint::Stripes(s) => {
                let p = format!("{path}.stripes");
                range(&format!("{p}.spacing"), s.spacing, 4.0, 1024.0)?;
                range(&format!("{p}.width"), s.width, 0.5, s.spacing)?;
                range(&format!("{p}.angle"), s.angle, -360.0, 360.0)
            }
        }
    }

    pub(super) fn discs(&self, path: &str, d: &Discs) -> Result<(), JobError> {
        count_range(&format!("{path}.colors"), d.colors.len(), 1, 8, "colours")?;
        if let Some(n) = d.count {
            let max = self.limits.max_discs;
            range(&format!("{path}.count"), n as f32, 0.0, max as f32)?;
        }
        for (field, v) in [("min_radius", d.min_radius), ("max_radius", d.max_radius)] {
            if let Some(v) = v {
                range(&format!("{path}.{field}"), v, 0.5, 256.0)?;
            }
        }
        if let (Some(lo), Some(hi)) = (d.min_radius, d.max_radius) {
            if lo > hi {
                return Err(invalid(
                    &format!("{path}.min_radius"),
                    "must not be larger than max_radius",
                ));
            }
        }
        if let Some(s) = d.softness {
            range(&format!("{path}.softness"), s, 0.0, 1.0)?;
        }
        Ok(())
    }

    pub(super) fn filters(&self, path: &str, filters: &[Filter]) -> Result<(), JobError> {
        let max = self.limits.max_filters;
        count_range(path, filters.len(), 0, max, "filters")?;
        for (i, f) in filters.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let unit = |field: &str, name: &str, v: f32, lo: f32| {
                range(&format!("{p}.{name}.{field}"), v, lo, 1.0)
            };
            match f {
                Filter::Blur { radius } => range(
                    &format!("{p}.blur.radius"),
                    *radius,
                    0.0,
                    self.limits.max_blur,
                )?,
                Filter::Sharpen { amount, radius } => {
                    range(&format!("{p}.sharpen.amount"), *amount, 0.0, 5.0)?;
                    range(&format!("{p}.sharpen.radius"), *radius, 0.5, 50.0)?;
                }
                Filter::Brightness { amount } => unit("amount", "brightness", *amount, -1.0)?,
                Filter::Contrast { amount } => unit("amount", "contrast", *amount, -1.0)?,
                Filter::Saturation { amount } => unit("amount", "saturation", *amount, -1.0)?,
                Filter::Tint { amount, .. } => unit("amount", "tint", *amount, 0.0)?,
                Filter::Duotone { amount, .. } => unit("amount", "duotone", *amount, 0.0)?,
                Filter::Vignette { amount, size, .. } => {
                    unit("amount", "vignette", *amount, 0.0)?;
                    unit("size", "vignette", *size, 0.0)?;
                }
                Filter::Grain { amount, .. } => unit("amount", "grain", *amount, 0.0)?,
            }
        }
        Ok(())
    }
}
