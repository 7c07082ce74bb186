// SPDX-License-Identifier: GPL-2.0

//! On-disk structures, each declared once: [`layout!`] takes a struct's fields with their byte
//! offsets and generates the struct, its decoder and its encoder (both from the same list, so
//! they cannot disagree), a table of its fields ([`FieldDesc`]) and compile-time checks that the
//! fields neither overlap nor run past the structure's size.
//!
//! Every integer is little-endian. Bytes between fields are padding: the encoder writes zeros
//! there and the decoder ignores them.
//!
//! Offsets come from the declarations, never from disk, and callers check that a block is the
//! full size before decoding it, so no access here goes out of bounds.
//!
//! # Examples
//!
//! ```ignore
//! layout! {
//!     /// A pointer to a bucket.
//!     #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
//!     pub struct Ptr(size: 8) {
//!         /// Member index.
//!         0x0 => pub member: u32,
//!         /// Bucket on that member.
//!         0x4 => pub bucket: u32,
//!     }
//! }
//!
//! let mut b = [0; 8];
//! Ptr { member: 1, bucket: 2 }.write(&mut b);
//! assert_eq!(b, [1, 0, 0, 0, 2, 0, 0, 0]);
//! assert_eq!(Ptr::read(&b), Ptr { member: 1, bucket: 2 });
//! ```

/// A value with a fixed little-endian encoding of [`Field::SIZE`] bytes.
pub trait Field: Sized {
    /// Bytes of the encoding.
    const SIZE: usize;

    /// Decodes from the first [`Field::SIZE`] bytes of `b`.
    fn read(b: &[u8]) -> Self;

    /// Decodes from the first [`Field::SIZE`] bytes of `b` into `self`, in place: arrays and
    /// structures decode element by element and field by field into their slot, so decoding a
    /// large one into a slot on the heap keeps no copy of it on the stack (superblocks are
    /// decoded deep in the kernel's call chains).
    fn read_into(&mut self, b: &[u8]) {
        *self = Self::read(b);
    }

    /// Encodes into the first [`Field::SIZE`] bytes of `b`.
    fn write(&self, b: &mut [u8]);
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            const SIZE: usize = core::mem::size_of::<$t>();

            fn read(b: &[u8]) -> Self {
                let mut v = [0; core::mem::size_of::<$t>()];
                v.copy_from_slice(&b[..Self::SIZE]);
                <$t>::from_le_bytes(v)
            }

            fn write(&self, b: &mut [u8]) {
                b[..Self::SIZE].copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}

int_field!(u8, u16, u32, u64);

/// An array is its elements one after the other.
impl<T: Field, const N: usize> Field for [T; N] {
    const SIZE: usize = T::SIZE * N;

    fn read(b: &[u8]) -> Self {
        core::array::from_fn(|i| T::read(&b[i * T::SIZE..]))
    }

    fn read_into(&mut self, b: &[u8]) {
        for (i, v) in self.iter_mut().enumerate() {
            v.read_into(&b[i * T::SIZE..]);
        }
    }

    fn write(&self, b: &mut [u8]) {
        for (i, v) in self.iter().enumerate() {
            v.write(&mut b[i * T::SIZE..]);
        }
    }
}

/// One field of a structure declared with [`layout!`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldDesc {
    /// The field's name in the Rust struct (and in `Documentation/on-disk-format.md`).
    pub name: &'static str,
    /// Byte offset from the start of the structure.
    pub offset: usize,
    /// Bytes of the field.
    pub size: usize,
}

/// Whether `fields`, in declaration order, are in ascending offset order, do not overlap and end
/// within `size` bytes.
pub const fn fields_fit(fields: &[FieldDesc], size: usize) -> bool {
    let mut end = 0;
    let mut i = 0;
    while i < fields.len() {
        if fields[i].offset < end || fields[i].size == 0 {
            return false;
        }
        end = fields[i].offset + fields[i].size;
        i += 1;
    }
    end <= size
}

/// Whether two names are equal (a `const` string comparison, for compile-time table checks).
pub(crate) const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The offset of the field called `name` in `fields`, if there is one; see [`offset!`].
pub const fn offset_of(fields: &[FieldDesc], name: &str) -> Option<usize> {
    let mut i = 0;
    while i < fields.len() {
        if same_name(fields[i].name, name) {
            return Some(fields[i].offset);
        }
        i += 1;
    }
    None
}

/// `offset!(Struct, field)`: the byte offset of `field` in a structure declared with
/// [`layout!`], as a constant; a field that does not exist stops the build.
macro_rules! offset {
    ($name:ident, $field:ident) => {{
        const OFFSET: usize =
            match $crate::shared::layout::offset_of($name::FIELDS, stringify!($field)) {
                Some(o) => o,
                None => panic!(concat!(
                    stringify!($name),
                    " has no field ",
                    stringify!($field)
                )),
            };
        OFFSET
    }};
}

/// Declares an on-disk structure: a struct whose fields each have a byte offset.
///
/// ```ignore
/// layout! {
///     /// Docs and attributes of the struct.
///     #[derive(Clone, Copy, Debug)]
///     pub struct Name(size: BYTES) {
///         /// Docs of the field.
///         OFFSET => pub field: Type,
///         ...
///     }
/// }
/// ```
///
/// Field types implement [`Field`]: `u8`, `u16`, `u32`, `u64`, arrays of fields, and other
/// structures declared with `layout!`. Fields are listed in offset order. The struct gets
/// `FIELDS` (its [`FieldDesc`]s) and a [`Field`] implementation whose `write` zeroes all
/// `BYTES` bytes before writing the fields; the build fails if fields overlap or pass `BYTES`.
macro_rules! layout {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident(size: $size:expr) {
            $(
                $(#[$fmeta:meta])*
                $off:literal => $fvis:vis $field:ident: $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $(
                $(#[$fmeta])*
                $fvis $field: $ty,
            )*
        }

        impl $name {
            /// The fields' names, offsets and sizes, in offset order.
            pub const FIELDS: &'static [$crate::shared::layout::FieldDesc] = &[$(
                $crate::shared::layout::FieldDesc {
                    name: stringify!($field),
                    offset: $off,
                    size: <$ty as $crate::shared::layout::Field>::SIZE,
                },
            )*];
        }

        impl $crate::shared::layout::Field for $name {
            const SIZE: usize = $size;

            fn read(b: &[u8]) -> Self {
                $name {
                    $($field: $crate::shared::layout::Field::read(&b[$off..]),)*
                }
            }

            fn read_into(&mut self, b: &[u8]) {
                $($crate::shared::layout::Field::read_into(&mut self.$field, &b[$off..]);)*
            }

            fn write(&self, b: &mut [u8]) {
                b[..$size].fill(0);
                $($crate::shared::layout::Field::write(&self.$field, &mut b[$off..]);)*
            }
        }

        // Evaluated at compile time only, as the kernel's `static_assert!` does.
        const _: () = assert!(
            $crate::shared::layout::fields_fit($name::FIELDS, $size),
            concat!(stringify!($name), ": fields out of order, overlapping or too large"),
        );
    };
}

pub(crate) use {layout, offset};
