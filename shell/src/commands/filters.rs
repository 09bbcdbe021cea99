//! (being written)

use super::Spec;

pub fn specs() -> Vec<Spec> {
    Vec::new()
}
