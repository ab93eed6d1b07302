//! The **compose** stage: a [`Recipe`] drawn onto its canvas.
//!
//! Inputs are decoded once each (shrunk on load as far as their placements allow), then the
//! background is painted and every layer is rendered to its own premultiplied raster, given
//! its filters, free rotation, glow and shadow, and blended onto the canvas (or its group's
//! canvas) bottom to top. Canvas filters come last. The result goes to the ordinary output
//! stage, which sizes and encodes it once per requested output.
//!
//! Everything runs on the calling thread in a fixed order with integer blending, seeded
//! randomness and pure-Rust maths, so a recipe renders to the same bytes every time.

pub mod blur;
pub mod filter;
pub mod paint;
pub mod place;
pub mod raster;
pub mod text;

use crate::job::Job;
use crate::job::Limits;
use crate::protocol::{ErrorCode, JobError};
use crate::recipe::cost::{circle_extent, filter_padding, rect_extent, rotated, soft_margin};
use crate::recipe::layout::{self, Placement};
use crate::recipe::{Area, Circle, Effects, Image, Layer, Recipe, Rect};
use crate::render::pixels::Pixels;
use crate::wipe::Ledger;
use place::Source;
use raster::Raster;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A composed canvas and where its time went.
#[derive(Debug)]
pub struct Composed {
    /// The canvas, straight alpha (RGB when fully opaque).
    pub pixels: Pixels,
    /// Time spent decoding inputs.
    pub decode: Duration,
    /// Time spent drawing.
    pub compose: Duration,
}

/// Renders `recipe` with the job's inputs.
pub fn compose(job: &Job, recipe: &Recipe, limits: &Limits) -> Result<Composed, JobError> {
    let started = Instant::now();
    let whole = layout::whole_area(recipe);
    let uses = layout::placements(recipe, whole);
    let sources = place::decode_sources(&job.inputs, &uses, limits, &job.ledger)?;
    let decoded = Instant::now();
    // Each decoded input is dropped (and wiped) right after its last placement, so it is not
    // held while the layers above it are drawn.
    let mut left: BTreeMap<String, usize> = BTreeMap::new();
    for u in &uses {
        *left.entry(u.input.clone()).or_default() += 1;
    }
    let pixels = draw_with(recipe, Sources::Owned { map: sources, left }, &job.ledger)?;
    Ok(Composed {
        pixels,
        decode: decoded - started,
        compose: decoded.elapsed(),
    })
}

/// Draws `recipe` with its inputs already decoded (by [`place::decode_sources`]).
pub fn draw(
    recipe: &Recipe,
    sources: &BTreeMap<String, Source>,
    ledger: &Ledger,
) -> Result<Pixels, JobError> {
    draw_with(recipe, Sources::Shared(sources), ledger)
}

/// Decoded inputs: owned by the render (dropped after their last use) or lent.
enum Sources<'a> {
    Owned {
        map: BTreeMap<String, Source>,
        left: BTreeMap<String, usize>,
    },
    Shared(&'a BTreeMap<String, Source>),
}

impl Sources<'_> {
    fn get(&self, name: &str) -> Option<&Source> {
        match self {
            Self::Owned { map, .. } => map.get(name),
            Self::Shared(map) => map.get(name),
        }
    }

    /// One placement of `name` is done; an owned input is dropped after its last.
    fn used(&mut self, name: &str) {
        if let Self::Owned { map, left } = self {
            if let Some(n) = left.get_mut(name) {
                *n -= 1;
                if *n == 0 {
                    map.remove(name);
                }
            }
        }
    }
}

fn draw_with(recipe: &Recipe, sources: Sources<'_>, ledger: &Ledger) -> Result<Pixels, JobError> {
    let drawer = Drawer {
        recipe,
        sources: std::cell::RefCell::new(sources),
        ledger,
        whole: layout::whole_area(recipe),
    };
    let (w, h) = (recipe.canvas.width, recipe.canvas.height);
    let mut canvas = Raster::new(0, 0, w, h, "canvas", ledger);
    if let Some(bg) = &recipe.canvas.background {
        paint::fill(&mut canvas, bg, drawer.seed("canvas.background"));
    }
    drawer.layers(&mut canvas, &recipe.layers, "layers")?;
    filter::apply(&mut canvas, &recipe.filters, drawer.seed("filters"));
    Ok(raster::unpremultiply(canvas, ledger))
}

struct Drawer<'a> {
    recipe: &'a Recipe,
    sources: std::cell::RefCell<Sources<'a>>,
    ledger: &'a Ledger,
    whole: Area,
}

/// FNV-1a of a field path: where an element is gives it its own seed.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Drawer<'_> {
    fn seed(&self, path: &str) -> u64 {
        paint::mix(self.recipe.seed ^ fnv(path))
    }

    fn layers(&self, target: &mut Raster, layers: &[Layer], path: &str) -> Result<(), JobError> {
        for (i, layer) in layers.iter().enumerate() {
            self.layer(target, layer, &format!("{path}[{i}]"))?;
        }
        Ok(())
    }

    fn layer(&self, target: &mut Raster, layer: &Layer, path: &str) -> Result<(), JobError> {
        match layer {
            Layer::Photo(img) => self.image(target, img, false, &format!("{path}.photo")),
            Layer::Sticker(img) => self.image(target, img, true, &format!("{path}.sticker")),
            Layer::Text(t) => {
                let raster = text::render(t, self.ledger);
                self.finish(target, raster, &t.effects(), &format!("{path}.text"));
                Ok(())
            }
            Layer::Rect(r) => {
                let raster = self.rect(r, &format!("{path}.rect"));
                self.finish(target, raster, &r.effects(), &format!("{path}.rect"));
                Ok(())
            }
            Layer::Circle(c) => {
                let raster = self.circle(c, &format!("{path}.circle"));
                self.finish(target, raster, &c.effects(), &format!("{path}.circle"));
                Ok(())
            }
            Layer::Grid(g) => {
                let mut cells = Vec::new();
                layout::placements_in(std::slice::from_ref(layer), self.whole, path, &mut cells);
                for cell in &cells {
                    let raster = self.place(cell)?;
                    self.finish(target, raster, &g.effects(), &cell.path);
                }
                Ok(())
            }
            Layer::Group(g) => {
                let p = format!("{path}.group");
                let (w, h) = (self.recipe.canvas.width, self.recipe.canvas.height);
                let mut canvas = Raster::new(0, 0, w, h, "group", self.ledger);
                self.layers(&mut canvas, &g.layers, &format!("{p}.layers"))?;
                self.finish(target, canvas, &g.effects(), &p);
                Ok(())
            }
        }
    }

    fn place(&self, p: &Placement) -> Result<Raster, JobError> {
        let mut sources = self.sources.borrow_mut();
        let source = sources.get(&p.input).ok_or_else(|| {
            JobError::new(
                ErrorCode::Internal,
                format!("{}: input `{}` was not decoded", p.path, p.input),
            )
        })?;
        let raster = place::place(p, source, self.ledger)?;
        sources.used(&p.input);
        Ok(raster)
    }

    fn image(
        &self,
        target: &mut Raster,
        img: &Image,
        sticker: bool,
        path: &str,
    ) -> Result<(), JobError> {
        let placement = layout::image_placement(img, sticker, self.whole, path.to_owned());
        let raster = self.place(&placement)?;
        self.finish(target, raster, &img.effects(), path);
        Ok(())
    }

    fn rect(&self, r: &Rect, path: &str) -> Raster {
        let e = rect_extent(r, self.whole);
        let mut raster = Raster::new(e.x, e.y, e.w, e.h, "layer.rect", self.ledger);
        let (wu, hu) = (e.w as usize, e.h as usize);
        let outer = paint::rounded_rect(wu, hu, r.radius, 0.0, self.ledger);
        if let Some(fill) = &r.fill {
            paint::fill(&mut raster, fill, self.seed(&format!("{path}.fill")));
            raster.mask(&outer);
        }
        if let Some(s) = &r.stroke {
            let inner = paint::rounded_rect(wu, hu, r.radius, s.width, self.ledger);
            let ring = paint::ring(&outer, &inner, self.ledger);
            raster.fill_coverage(&ring, s.color.premultiplied(1.0));
        }
        raster
    }

    fn circle(&self, c: &Circle, path: &str) -> Raster {
        let [cx, cy] = c.center;
        let e = circle_extent(c);
        let mut raster = Raster::new(e.x, e.y, e.w, e.h, "layer.circle", self.ledger);
        let centre = (cx - e.x as f32, cy - e.y as f32);
        let size = (e.w as usize, e.h as usize);
        let outer = paint::circle(size, centre, c.radius, 0.0, self.ledger);
        if let Some(fill) = &c.fill {
            paint::fill(&mut raster, fill, self.seed(&format!("{path}.fill")));
            raster.mask(&outer);
        }
        if let Some(stroke) = &c.stroke {
            let inner = paint::circle(size, centre, c.radius, stroke.width, self.ledger);
            raster.fill_coverage(
                &paint::ring(&outer, &inner, self.ledger),
                stroke.color.premultiplied(1.0),
            );
        }
        raster
    }

    /// Filters, rotation, glow and shadow, then the blend onto `target`.
    fn finish(&self, target: &mut Raster, raster: Raster, e: &Effects<'_>, path: &str) {
        let mut raster = raster;
        if !e.filters.is_empty() {
            let margin = filter_padding(e.filters);
            if margin > 0 {
                raster = raster.padded(margin, self.ledger);
            }
            filter::apply(
                &mut raster,
                e.filters,
                self.seed(&format!("{path}.filters")),
            );
        }
        if e.angle != 0.0 {
            raster = rotate(&raster, e.angle, self.ledger);
        }
        if let Some(g) = e.glow {
            let halo = self.soft_copy(&raster, g.blur, g.color, (0.0, 0.0));
            target.draw(&halo, e.opacity);
        }
        if let Some(s) = e.shadow {
            let shadow = self.soft_copy(&raster, s.blur, s.color, (s.dx, s.dy));
            target.draw(&shadow, e.opacity);
        }
        target.draw(&raster, e.opacity);
    }

    /// The raster's shape, blurred by `sigma`, in `color`, moved by `offset`.
    fn soft_copy(
        &self,
        raster: &Raster,
        sigma: f32,
        color: crate::recipe::Color,
        offset: (f32, f32),
    ) -> Raster {
        let margin = soft_margin(sigma);
        let (mut plane, w, h) = raster.alpha_plane(margin);
        blur::blur(&mut plane, w as usize, h as usize, 1, sigma, self.ledger);
        let x = raster.x - margin as i32 + offset.0.round() as i32;
        let y = raster.y - margin as i32 + offset.1.round() as i32;
        let mut out = Raster::new(x, y, w, h, "layer.shadow", self.ledger);
        out.fill_coverage(&plane, color.premultiplied(1.0));
        out
    }
}

/// Turns a raster by `degrees` clockwise about its centre (bilinear, premultiplied).
pub fn rotate(src: &Raster, degrees: f32, ledger: &Ledger) -> Raster {
    let rad = degrees.to_radians();
    let (sin, cos) = (libm::sinf(rad), libm::cosf(rad));
    let (sw, sh) = (src.width() as f32, src.height() as f32);
    let (w, h) = rotated(src.width(), src.height(), degrees);
    let cx = src.x as f32 + sw / 2.0;
    let cy = src.y as f32 + sh / 2.0;
    let x = (cx - w as f32 / 2.0).round() as i32;
    let y = (cy - h as f32 / 2.0).round() as i32;
    let mut out = Raster::new(x, y, w, h, "layer.rotated", ledger);
    ledger.visit(crate::recipe::cost::visits::rotate(
        u64::from(w),
        u64::from(h),
    ));
    let (ow, oh) = (src.width() as i64, src.height() as i64);
    let from = src.bytes();
    let sample = |px: i64, py: i64, k: usize| -> f32 {
        if px < 0 || py < 0 || px >= ow || py >= oh {
            0.0
        } else {
            f32::from(from[((py * ow + px) * 4) as usize + k])
        }
    };
    // Centre of the output in its own pixels, relative to the source's centre.
    let (dx0, dy0) = (x as f32 - cx, y as f32 - cy);
    let wu = w as usize;
    for (i, p) in out.bytes_mut().chunks_exact_mut(4).enumerate() {
        let u = (i % wu) as f32 + 0.5 + dx0;
        let v = (i / wu) as f32 + 0.5 + dy0;
        let sx = u * cos + v * sin + sw / 2.0 - 0.5;
        let sy = -u * sin + v * cos + sh / 2.0 - 0.5;
        if sx < -1.0 || sy < -1.0 || sx > sw || sy > sh {
            continue;
        }
        let (x0, y0) = (sx.floor(), sy.floor());
        let (fx, fy) = (sx - x0, sy - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        for (k, out) in p.iter_mut().enumerate() {
            let top = sample(x0, y0, k) * (1.0 - fx) + sample(x0 + 1, y0, k) * fx;
            let bottom = sample(x0, y0 + 1, k) * (1.0 - fx) + sample(x0 + 1, y0 + 1, k) * fx;
            *out = raster::to_u8(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

#[cfg(test)]
mod cost_tests;
#[cfg(test)]
mod tests;
