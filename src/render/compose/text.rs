//! Text layers: the bundled Inter font (regular and bold, SIL Open Font License, see
//! `assets/fonts/`), greedy word wrapping inside the box, an ellipsis where the text does not
//! fit, alignment, line height, letter spacing, and an outline for legibility on photos.
//!
//! The font is subset (see `assets/fonts/README.md`): Latin with every accented letter of
//! Latin-1 and Latin Extended-A, Greek, basic Cyrillic, punctuation, currency, arrows and
//! common symbols (★ ♥ ✓ →). A character outside it draws nothing. There is no complex
//! shaping and no kerning.

use super::blur::blur;
use super::raster::{plane, to_u8, Raster};
use crate::recipe::{Align, Text, VAlign, Weight};
use crate::wipe::{Ledger, SecretBuf};
use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};

static REGULAR: &[u8] = include_bytes!("../../../assets/fonts/Inter-Regular.otf");
static BOLD: &[u8] = include_bytes!("../../../assets/fonts/Inter-Bold.otf");

/// The bundled font of a weight.
pub fn font(weight: Weight) -> FontRef<'static> {
    let bytes = match weight {
        Weight::Regular => REGULAR,
        Weight::Bold => BOLD,
    };
    FontRef::try_from_slice(bytes).expect("the bundled font parses")
}

/// Lays out and measures text in one font, size and letter spacing.
struct Layout<'a> {
    font: ab_glyph::PxScaleFont<&'a FontRef<'static>>,
    spacing: f32,
}

impl Layout<'_> {
    fn width(&self, chars: &[char]) -> f32 {
        let mut w = 0.0;
        let mut prev = None;
        for &c in chars {
            let id = self.font.glyph_id(c);
            if let Some(p) = prev {
                w += self.font.kern(p, id) + self.spacing;
            }
            w += self.font.h_advance(id);
            prev = Some(id);
        }
        w
    }

    /// Greedy word wrap of one paragraph into lines no wider than `max` (a word wider than a
    /// line is broken between characters).
    fn wrap(&self, paragraph: &str, max: f32, lines: &mut Vec<Vec<char>>) {
        let mut line: Vec<char> = Vec::new();
        for word in paragraph.split(' ') {
            let word: Vec<char> = word.chars().collect();
            let mut candidate = line.clone();
            if !candidate.is_empty() {
                candidate.push(' ');
            }
            candidate.extend(&word);
            if self.width(&candidate) <= max || line.is_empty() && word.is_empty() {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            for c in word {
                line.push(c);
                if line.len() > 1 && self.width(&line) > max {
                    line.pop();
                    lines.push(std::mem::replace(&mut line, vec![c]));
                }
            }
        }
        lines.push(line);
    }

    /// Shortens `line` until it fits `max` with an ellipsis after it.
    fn ellipsize(&self, mut line: Vec<char>, max: f32) -> Vec<char> {
        loop {
            while line.last() == Some(&' ') {
                line.pop();
            }
            let mut with = line.clone();
            with.push('…');
            if line.is_empty() || self.width(&with) <= max {
                return with;
            }
            line.pop();
        }
    }
}

/// The lines `t` shows in its box, after wrapping and truncation.
pub fn lines(t: &Text) -> Vec<String> {
    let face = font(t.weight);
    layout_lines(t, &face)
        .into_iter()
        .map(|l| l.into_iter().collect())
        .collect()
}

fn scale(face: &FontRef<'static>, size: f32) -> PxScale {
    let upem = face.units_per_em().unwrap_or(1000.0);
    PxScale::from(size * face.height_unscaled() / upem)
}

fn layout_lines(t: &Text, face: &FontRef<'static>) -> Vec<Vec<char>> {
    let layout = Layout {
        font: face.as_scaled(scale(face, t.size)),
        spacing: t.letter_spacing,
    };
    let mut lines = Vec::new();
    for paragraph in t.text.split('\n') {
        layout.wrap(paragraph, t.area.width, &mut lines);
    }
    let line_px = t.size * t.line_height;
    let mut fit = ((t.area.height / line_px).floor() as usize).max(1);
    if t.max_lines > 0 {
        fit = fit.min(t.max_lines as usize);
    }
    if lines.len() > fit {
        lines.truncate(fit);
        let last = lines.pop().unwrap_or_default();
        lines.push(layout.ellipsize(last, t.area.width));
    }
    lines
}

/// Renders a text layer into a raster covering its box (plus room for the outline).
pub fn render(t: &Text, ledger: &Ledger) -> Raster {
    let face = font(t.weight);
    let lines = layout_lines(t, &face);
    let scaled = face.as_scaled(scale(&face, t.size));
    let layout = Layout {
        font: scaled,
        spacing: t.letter_spacing,
    };
    let margin = crate::recipe::cost::text_margin(t) as usize;
    let extent = crate::recipe::cost::text_extent(t);
    let (w, h) = (extent.w as usize, extent.h as usize);
    let mut coverage = plane(w, h, 1, "pixels.text", ledger);
    let mut glyph_visits = 0u64;

    let line_px = t.size * t.line_height;
    let block = line_px * lines.len() as f32;
    let top = match t.valign {
        VAlign::Top => 0.0,
        VAlign::Middle => (t.area.height - block) / 2.0,
        VAlign::Bottom => t.area.height - block,
    };
    let em = scaled.ascent() - scaled.descent();
    for (i, line) in lines.iter().enumerate() {
        let width = layout.width(line);
        let left = match t.align {
            Align::Left => 0.0,
            Align::Center => (t.area.width - width) / 2.0,
            Align::Right => t.area.width - width,
        };
        let baseline = top + i as f32 * line_px + (line_px - em) / 2.0 + scaled.ascent();
        let mut pen = margin as f32 + left;
        let mut prev = None;
        for &c in line {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                pen += scaled.kern(p, id) + t.letter_spacing;
            }
            let glyph =
                id.with_scale_and_position(scaled.scale(), point(pen, margin as f32 + baseline));
            if let Some(outlined) = face.outline_glyph(glyph) {
                let b = outlined.px_bounds();
                outlined.draw(|gx, gy, c| {
                    glyph_visits += 1;
                    let x = b.min.x as i64 + i64::from(gx);
                    let y = b.min.y as i64 + i64::from(gy);
                    if (0..w as i64).contains(&x) && (0..h as i64).contains(&y) {
                        let k = y as usize * w + x as usize;
                        coverage[k] = coverage[k].max(to_u8(c * 255.0));
                    }
                });
            }
            pen += scaled.h_advance(id);
            prev = Some(id);
        }
    }

    ledger.visit(glyph_visits);
    let mut raster = Raster::new(extent.x, extent.y, extent.w, extent.h, "layer.text", ledger);
    if let Some(o) = &t.outline {
        let mut ring = dilate(&coverage, w, h, o.width.ceil() as usize, ledger);
        blur(&mut ring, w, h, 1, 0.6, ledger);
        raster.fill_coverage(&ring, o.color.premultiplied(1.0));
    }
    raster.fill_coverage(&coverage, t.color.premultiplied(1.0));
    raster
}

/// Grows coverage by `r` pixels (a separable maximum filter).
fn dilate(src: &[u8], w: usize, h: usize, r: usize, ledger: &Ledger) -> SecretBuf {
    ledger.visit(crate::recipe::cost::visits::dilate(
        w as u64, h as u64, r as u64,
    ));
    let mut across = plane(w, h, 1, "pixels.text", ledger);
    for y in 0..h {
        for x in 0..w {
            let (lo, hi) = (x.saturating_sub(r), (x + r).min(w - 1));
            across[y * w + x] = src[y * w + lo..=y * w + hi]
                .iter()
                .copied()
                .max()
                .unwrap_or(0);
        }
    }
    let mut out = plane(w, h, 1, "pixels.text", ledger);
    for y in 0..h {
        let (lo, hi) = (y.saturating_sub(r), (y + r).min(h - 1));
        for x in 0..w {
            out[y * w + x] = (lo..=hi).map(|yy| across[yy * w + x]).max().unwrap_or(0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Stroke;

    fn text(s: &str, width: f32, height: f32) -> Text {
        serde_json::from_value(serde_json::json!({
            "text": s,
            "box": {"x": 0, "y": 0, "width": width, "height": height},
            "size": 20
        }))
        .unwrap()
    }

    #[test]
    fn the_bundled_fonts_cover_accented_latin() {
        for weight in [Weight::Regular, Weight::Bold] {
            let f = font(weight);
            for c in "AaZz09ÉéèêëÀàçÇñÑøØßœŒšŽłŁ…€–—“”•★".chars()
            {
                assert_ne!(f.glyph_id(c).0, 0, "{c} in {weight:?}");
            }
        }
    }

    #[test]
    fn text_wraps_at_words_and_ends_in_an_ellipsis_when_it_does_not_fit() {
        let t = text("Aurora the moonlit fairy of the seventh shelf", 120.0, 50.0);
        let got = lines(&t);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("Aurora"));
        assert!(got[1].ends_with('…'), "{got:?}");
        let all = text("Aurora", 300.0, 100.0);
        assert_eq!(lines(&all), vec!["Aurora".to_string()]);
    }

    #[test]
    fn newlines_break_lines_and_max_lines_caps_them() {
        let mut t = text("one\ntwo\nthree", 300.0, 300.0);
        assert_eq!(lines(&t), vec!["one", "two", "three"]);
        t.max_lines = 2;
        assert_eq!(lines(&t), vec!["one", "two…"]);
    }

    #[test]
    fn a_word_longer_than_the_box_is_broken() {
        let t = text("Supercalifragilistic", 60.0, 200.0);
        let got = lines(&t);
        assert!(got.len() > 1, "{got:?}");
        assert_eq!(got.concat(), "Supercalifragilistic");
    }

    #[test]
    fn bold_is_heavier_and_an_outline_widens_the_ink() {
        let ledger = Ledger::default();
        let ink = |r: &Raster| {
            r.bytes()
                .chunks_exact(4)
                .map(|p| u64::from(p[3]))
                .sum::<u64>()
        };
        let regular = text("Midnit ÉÀ", 200.0, 40.0);
        let mut bold = regular.clone();
        bold.weight = Weight::Bold;
        let mut outlined = regular.clone();
        outlined.outline = Some(Stroke {
            width: 2.0,
            color: crate::recipe::Color([0, 0, 0, 255]),
        });
        let (r, b, o) = (
            render(&regular, &ledger),
            render(&bold, &ledger),
            render(&outlined, &ledger),
        );
        assert!(ink(&r) > 10_000);
        assert!(ink(&b) > ink(&r) * 11 / 10);
        assert!(ink(&o) > ink(&b));
    }

    #[test]
    fn alignment_moves_the_ink() {
        let ledger = Ledger::default();
        let first_column = |t: &Text| {
            let r = render(t, &ledger);
            let w = r.width() as usize;
            (0..w)
                .find(|&x| {
                    r.bytes()
                        .chunks_exact(4)
                        .skip(x)
                        .step_by(w)
                        .any(|p| p[3] > 0)
                })
                .unwrap()
        };
        let mut t = text("Hi", 200.0, 40.0);
        let left = first_column(&t);
        t.align = Align::Right;
        let right = first_column(&t);
        t.align = Align::Center;
        let centre = first_column(&t);
        assert!(left < centre && centre < right, "{left} {centre} {right}");
    }
}
