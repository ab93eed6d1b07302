//! Presets: named outputs (and a recipe) an operator defines in the configuration
//! (`[presets.avatar]`), which a request names in `preset` instead of, or besides, its own.
//!
//! - A preset's outputs come first; the request's own `outputs` are added after them (names
//!   must differ). A request may add a recipe only to a preset without one.
//! - With `presets_only` (a limit), a request must name a preset and add nothing to it:
//!   anything else is `request.preset_required`.
//! - Presets are held as the CBOR items a request would carry and read by the same parsers,
//!   so a preset cannot do anything a request could not; each is checked at start
//!   ([`Presets::check`]), so a bad preset stops the worker with its path, not a job.

use super::{plan_outputs, read_specs};
use crate::job::{Limits, OutputPlan};
use crate::protocol::{ErrorCode, JobError};
use std::collections::BTreeMap;

/// One preset: the CBOR items of its `outputs` and, if it has one, its `recipe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preset {
    outputs: Vec<u8>,
    recipe: Option<Vec<u8>>,
}

/// Every preset by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presets {
    by_name: BTreeMap<String, Preset>,
}

fn cbor_of(value: &impl serde::Serialize, what: &str) -> Result<Vec<u8>, String> {
    let value = ciborium::Value::serialized(value).map_err(|_| format!("{what}: not a value"))?;
    let mut item = Vec::new();
    ciborium::into_writer(&value, &mut item).map_err(|_| format!("{what}: not encodable"))?;
    Ok(item)
}

impl Preset {
    /// A preset of `outputs` (a list of output maps, as in a request) and `recipe`.
    pub fn new(
        outputs: &impl serde::Serialize,
        recipe: Option<&impl serde::Serialize>,
    ) -> Result<Self, String> {
        Ok(Self {
            outputs: cbor_of(outputs, "outputs")?,
            recipe: recipe.map(|r| cbor_of(r, "recipe")).transpose()?,
        })
    }
}

fn required() -> JobError {
    JobError::new(
        ErrorCode::RequestPresetRequired,
        "preset: this worker renders only its presets; name one in `preset`, \
         without `outputs` or `recipe`",
    )
}

impl Presets {
    /// Adds (or replaces) the preset `name`.
    pub fn insert(&mut self, name: impl Into<String>, preset: Preset) {
        self.by_name.insert(name.into(), preset);
    }

    /// The presets' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Reads every preset as a request would be read, against `limits`. The error names the
    /// preset and the field: `presets.avatar: outputs[0].quality: expected an integer 1-100`.
    pub fn check(&self, limits: &Limits) -> Result<(), String> {
        for (name, preset) in &self.by_name {
            if !super::envelope::valid_name(name) {
                return Err(
                    "presets: a preset name must be 1-64 characters of A-Z a-z 0-9 - _ .".into(),
                );
            }
            let at = |e: JobError| format!("presets.{name}: {}", e.message);
            super::parse_outputs(&preset.outputs, limits).map_err(at)?;
            if let Some(recipe) = &preset.recipe {
                super::recipe::parse_cbor(recipe).map_err(at)?;
            }
        }
        Ok(())
    }

    /// The outputs to plan and the recipe item to read for a request that names `preset`
    /// (or none) and carries `outputs` and `recipe` (either may be absent).
    pub fn apply<'a>(
        &'a self,
        preset: Option<&str>,
        outputs: Option<&'a [u8]>,
        recipe: Option<&'a [u8]>,
        limits: &Limits,
    ) -> Result<(Vec<OutputPlan>, Option<&'a [u8]>), JobError> {
        let Some(name) = preset else {
            if limits.presets_only {
                return Err(required());
            }
            let item = outputs.ok_or_else(|| {
                JobError::new(ErrorCode::RequestMalformed, "missing field `outputs`")
            })?;
            return Ok((super::parse_outputs(item, limits)?, recipe));
        };
        // An empty `outputs` list beside a preset adds nothing to it.
        let outputs = outputs.filter(|item| *item != [0x80]);
        if limits.presets_only && (outputs.is_some() || recipe.is_some()) {
            return Err(required());
        }
        let preset = self.by_name.get(name).ok_or_else(|| {
            JobError::new(
                ErrorCode::RequestInvalid,
                "preset: not a preset this worker defines",
            )
        })?;
        let mut specs = read_specs(&preset.outputs, limits)?;
        if let Some(item) = outputs {
            specs.extend(read_specs(item, limits)?);
        }
        let recipe = match (&preset.recipe, recipe) {
            (Some(_), Some(_)) => {
                return Err(JobError::new(
                    ErrorCode::RequestInvalid,
                    "recipe: the preset has its own recipe; a request may add one only to a \
                     preset without",
                ))
            }
            (Some(own), None) => Some(own.as_slice()),
            (None, given) => given,
        };
        Ok((plan_outputs(&specs, limits)?, recipe))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn presets() -> Presets {
        let mut p = Presets::default();
        let avatar = json!([{"name": "avatar", "format": "webp", "width": 256, "height": 256, "fit": "cover"}]);
        p.insert("avatar", Preset::new(&avatar, None::<&()>).unwrap());
        p
    }

    fn item(v: serde_json::Value) -> Vec<u8> {
        cbor_of(&v, "x").unwrap()
    }

    #[test]
    fn a_preset_gives_its_outputs_and_a_request_may_add_its_own_after_them() {
        let p = presets();
        let limits = Limits::default();
        let (plans, recipe) = p.apply(Some("avatar"), None, None, &limits).unwrap();
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].name, "avatar");
        assert!(recipe.is_none());
        let more = item(json!([{"name": "thumb", "format": "jpeg", "width": 64}]));
        let (plans, _) = p.apply(Some("avatar"), Some(&more), None, &limits).unwrap();
        let names: Vec<_> = plans.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["avatar", "thumb"]);
        let clash = item(json!([{"name": "avatar", "format": "jpeg"}]));
        let e = p
            .apply(Some("avatar"), Some(&clash), None, &limits)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::RequestInvalid);
        assert!(e.message.starts_with("outputs[1].name:"), "{}", e.message);
    }

    #[test]
    fn an_unknown_preset_is_invalid_and_its_name_is_not_echoed() {
        let e = presets()
            .apply(Some("s3cret-name"), None, None, &Limits::default())
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::RequestInvalid);
        assert!(!e.message.contains("s3cret"));
    }

    #[test]
    fn presets_only_refuses_requests_without_a_preset_or_adding_to_one() {
        let p = presets();
        let limits = Limits {
            presets_only: true,
            ..Limits::default()
        };
        let own = item(json!([{"name": "thumb", "format": "jpeg"}]));
        for (preset, outputs) in [(None, Some(own.as_slice())), (Some("avatar"), Some(&own))] {
            let e = p.apply(preset, outputs, None, &limits).unwrap_err();
            assert_eq!(e.code, ErrorCode::RequestPresetRequired);
        }
        assert!(p.apply(Some("avatar"), None, None, &limits).is_ok());
    }

    #[test]
    fn a_bad_preset_is_named_with_its_field_path_at_check() {
        let mut p = presets();
        let bad = json!([{"name": "x", "format": "jpeg", "quality": 900}]);
        p.insert("card", Preset::new(&bad, None::<&()>).unwrap());
        let e = p.check(&Limits::default()).unwrap_err();
        assert!(e.starts_with("presets.card: outputs[0].quality"), "{e}");
        let recipe = json!({"canvas": {"width": 10, "height": 10}, "layers": [{"text": {"text": "a", "size": 900}}]});
        let mut p = presets();
        let ok = json!([{"name": "x", "format": "jpeg"}]);
        p.insert("card", Preset::new(&ok, Some(&recipe)).unwrap());
        let e = p.check(&Limits::default()).unwrap_err();
        assert!(e.starts_with("presets.card: recipe."), "{e}");
    }
}
