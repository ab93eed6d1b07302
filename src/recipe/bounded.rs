//! Lists and strings bounded *while* a recipe is parsed, so no request can make the parser
//! build more than a few thousand small values, however it nests them.
//!
//! Each list has its own cap (`#[serde(deserialize_with = "bounded::list::<16, _, _>")]`), and
//! all layers of a recipe share one budget: every layer, grid cell and grouped layer takes one
//! from it as it is read, so the total is bounded whatever the nesting. The budget lives in a
//! thread-local because serde's derive offers no way to hand state down to nested fields; the
//! top-level `layers` list resets it, and a guard undoes the depth count on every exit.

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

/// Most layers in a recipe, counting grid cells and layers inside groups.
pub const MAX_LAYERS: usize = 64;

/// Deepest nesting of layer lists the parser follows. The checker allows less (see
/// `RecipeLimits::max_depth`); this only bounds the parser's recursion.
pub const MAX_PARSE_DEPTH: usize = 8;

/// Longest text of a text layer, in characters.
pub const MAX_TEXT_CHARS: usize = 500;

thread_local! {
    /// (layer lists entered and not yet left, layers taken from the budget)
    static LAYERS: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

fn take_layers(n: usize) -> Result<(), ()> {
    LAYERS.with(|c| {
        let (depth, used) = c.get();
        if used + n > MAX_LAYERS {
            Err(())
        } else {
            c.set((depth, used + n));
            Ok(())
        }
    })
}

/// Leaves a layer list on drop, whether it parsed or not.
struct Level;

impl Level {
    fn enter() -> Result<Self, ()> {
        LAYERS.with(|c| {
            let (depth, used) = c.get();
            if depth >= MAX_PARSE_DEPTH {
                return Err(());
            }
            // The top-level list starts a new recipe: a fresh budget.
            let used = if depth == 0 { 0 } else { used };
            c.set((depth + 1, used));
            Ok(Self)
        })
    }
}

impl Drop for Level {
    fn drop(&mut self) {
        LAYERS.with(|c| {
            let (depth, used) = c.get();
            c.set((depth.saturating_sub(1), used));
        });
    }
}

fn too_many<E: de::Error>() -> E {
    E::invalid_length(
        MAX_LAYERS + 1,
        &"at most 64 layers in all (grid cells and grouped layers count)",
    )
}

/// A list of at most `N` items.
pub fn list<'de, const N: usize, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    d.deserialize_seq(ListVisitor::<N, T, Plain>(PhantomData, PhantomData))
}

/// A list of layers: at most [`MAX_LAYERS`], each taken from the recipe's layer budget.
pub fn layers<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    let _level = Level::enter().map_err(|()| {
        de::Error::invalid_length(MAX_PARSE_DEPTH + 1, &"layer lists nested at most 8 deep")
    })?;
    d.deserialize_seq(ListVisitor::<MAX_LAYERS, T, Budgeted>(
        PhantomData,
        PhantomData,
    ))
}

/// A grid's inputs: at most [`MAX_LAYERS`]; each cell beyond the first takes from the budget
/// (the grid layer itself took one).
pub fn cells<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let names: Vec<String> = list::<MAX_LAYERS, String, D>(d)?;
    take_layers(names.len().saturating_sub(1)).map_err(|()| too_many::<D::Error>())?;
    Ok(names)
}

/// A text of at most [`MAX_TEXT_CHARS`] characters.
/// Checked where the format lends the string, so an over-long text is refused before it is
/// copied.
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Text;
    fn short<E: de::Error>(s: &str) -> Result<(), E> {
        if s.chars().nth(MAX_TEXT_CHARS).is_some() {
            return Err(E::invalid_length(
                MAX_TEXT_CHARS + 1,
                &"at most 500 characters",
            ));
        }
        Ok(())
    }
    impl Visitor<'_> for Text {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string of at most 500 characters")
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<String, E> {
            short(s).map(|()| s.to_owned())
        }

        fn visit_string<E: de::Error>(self, s: String) -> Result<String, E> {
            short(&s).map(|()| s)
        }
    }
    d.deserialize_str(Text)
}

/// Whether each element takes from the layer budget.
trait Budget {
    fn take() -> Result<(), ()>;
}

struct Plain;
impl Budget for Plain {
    fn take() -> Result<(), ()> {
        Ok(())
    }
}

struct Budgeted;
impl Budget for Budgeted {
    fn take() -> Result<(), ()> {
        take_layers(1)
    }
}

struct ListVisitor<const N: usize, T, B>(PhantomData<T>, PhantomData<B>);

impl<'de, const N: usize, T: Deserialize<'de>, B: Budget> Visitor<'de> for ListVisitor<N, T, B> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array of at most {N} items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        // At most one element past the cap is read: the error names its index.
        let mut out = Vec::new();
        while let Some(item) = seq.next_element_seed(Element::<T, B>(PhantomData, PhantomData))? {
            if out.len() == N {
                return Err(de::Error::invalid_length(N + 1, &self));
            }
            out.push(item);
        }
        Ok(out)
    }
}

/// One element, taken from the budget before it is read (so the error names its index).
struct Element<T, B>(PhantomData<T>, PhantomData<B>);

impl<'de, T: Deserialize<'de>, B: Budget> DeserializeSeed<'de> for Element<T, B> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        B::take().map_err(|()| too_many::<D::Error>())?;
        T::deserialize(d)
    }
}
