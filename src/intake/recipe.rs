//! Reading a request's `recipe`: straight into its types, every list bounded as it is read,
//! errors naming the field's path and what was expected there, never the value.

use super::fields::{typed, typed_json, FieldError};
use crate::protocol::{ErrorCode, JobError};
use crate::recipe::Recipe;

fn field_error(e: FieldError) -> JobError {
    JobError::new(ErrorCode::RecipeInvalid, e.to_string())
}

/// Reads a request's `recipe` item (CBOR), every list bounded as it is read. Errors name the
/// offending field's path and what was expected there, never the value.
pub fn parse_cbor(item: &[u8]) -> Result<Recipe, JobError> {
    typed(item, "recipe").map_err(field_error)
}

/// Reads a recipe from JSON (request files and tools), with the same bounds and errors.
pub fn from_json(json: serde_json::Value) -> Result<Recipe, JobError> {
    typed_json(json, "recipe").map_err(field_error)
}
