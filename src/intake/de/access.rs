//! How the deserializer hands serde the parts of a value: the items of an array or a map
//! ([`Items`], counted as they are read) and the variant of an externally tagged enum.

use super::{DeError, Deserializer};
use serde::de::{self, DeserializeSeed, Unexpected, Visitor};

/// The items left of an array or map: a count, or until the break of an indefinite one.
pub(super) struct Items<'a, 'de> {
    pub(super) d: &'a mut Deserializer<'de>,
    pub(super) left: Option<u64>,
}

impl<'de> Items<'_, 'de> {
    /// Reads the next item with `seed`, or `None` at the end.
    fn next<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        match &mut self.left {
            Some(0) => return Ok(None),
            Some(n) => *n -= 1,
            None if self.d.c.at_break()? => return Ok(None),
            None => {}
        }
        seed.deserialize(&mut *self.d).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        self.left.and_then(|n| usize::try_from(n).ok())
    }
}

impl<'de> de::SeqAccess<'de> for Items<'_, 'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        self.next(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        Items::size_hint(self)
    }
}

impl<'de> de::MapAccess<'de> for Items<'_, 'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        self.next(seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        seed.deserialize(&mut *self.d)
    }

    fn size_hint(&self) -> Option<usize> {
        Items::size_hint(self)
    }
}

/// An enum written as a map of one entry: `{"variant": value}`.
pub(super) struct Variant<'a, 'de>(pub(super) &'a mut Deserializer<'de>);

impl<'de, 'a> de::EnumAccess<'de> for Variant<'a, 'de> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self), DeError> {
        let variant = seed.deserialize(&mut *self.0)?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        de::Deserialize::deserialize(&mut *self.0)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(&mut *self.0)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(&mut *self.0, v)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(&mut *self.0, v)
    }
}

/// An enum written as its variant's name: `"cover"`.
pub(super) struct UnitVariant<'a, 'de>(pub(super) &'a mut Deserializer<'de>);

impl<'de, 'a> de::EnumAccess<'de> for UnitVariant<'a, 'de> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self), DeError> {
        let variant = seed.deserialize(&mut *self.0)?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for UnitVariant<'_, 'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value, DeError> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"a map of one entry",
        ))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _v: V) -> Result<V::Value, DeError> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"a map of one entry",
        ))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _v: V,
    ) -> Result<V::Value, DeError> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"a map of one entry",
        ))
    }
}
