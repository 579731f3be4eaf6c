//! A password or key: never shown by `Debug` or `Display`, held once, wiped when dropped.
//!
//! Invariants a reader must not break:
//! * One allocation per secret: clones share it (an `Arc`), so handing a password to another
//!   connection setting copies a pointer, never the text.
//! * The text, spare capacity included, is zeroized when the last clone drops (`Zeroizing`).
//! * `expose` lends the text; a copy made of it (`to_owned`, `format!`) is one the wipe never
//!   reaches, so keep it borrowed. Where a dependency insists on an owned copy, the code that
//!   makes one says so.

use std::fmt;
use std::sync::Arc;
use zeroize::Zeroizing;

#[derive(Clone)]
pub struct Secret(Arc<Zeroizing<String>>);

impl Secret {
    /// Takes ownership of `value` (a `String` moves in without a copy).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Arc::new(Zeroizing::new(value.into())))
    }

    /// The only way to read the value; grep for `expose` to audit every use.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.chars().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `other` is a clone of this secret, holding the very same allocation.
    pub fn shares_value_with(&self, other: &Secret) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_reveals_the_value() {
        let secret = Secret::new("hunter2-hunter2");
        assert!(!format!("{secret:?} {secret}").contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2-hunter2");
    }

    fn wipes_on_drop<T: zeroize::ZeroizeOnDrop>() {}

    #[test]
    fn clones_share_one_allocation_that_is_wiped_on_drop() {
        let secret = Secret::new(String::from("correct horse battery staple"));
        let clone = secret.clone();
        assert!(clone.shares_value_with(&secret));
        assert!(std::ptr::eq(clone.expose(), secret.expose()));
        assert_eq!(Arc::strong_count(&secret.0), 2);
        drop(clone);
        assert_eq!(Arc::strong_count(&secret.0), 1);
        // Equal text, separate allocation: equal, not shared.
        let twin = Secret::new("correct horse battery staple");
        assert!(twin == secret && !twin.shares_value_with(&secret));
        // What the last holder drops wipes itself.
        wipes_on_drop::<Zeroizing<String>>();
    }
}
