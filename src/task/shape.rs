use std::{
    any::TypeId,
    cell::Cell,
    hash::{Hash, Hasher},
};

use crate::Task;

/// Fingerprints already computed on this thread, by task type: hashing
/// the names costs about 100 ns, a look-up here a few.
const CACHED: usize = 8;

thread_local! {
    static CACHE: [Cell<Option<(TypeId, u64)>>; CACHED] =
        const { [const { Cell::new(None) }; CACHED] };
}

/// The fingerprint of task `T`'s argument and output types.
pub(crate) fn of<T: Task>() -> u64 {
    let id = TypeId::of::<T>();
    let compute = || {
        of_names(
            std::any::type_name::<T::Args>(),
            std::any::type_name::<T::Output>(),
        )
    };
    let mut bits = TypeBits(0);
    id.hash(&mut bits);
    let index = ((bits.0 ^ (bits.0 >> 32)) % CACHED as u64) as usize;
    CACHE
        .try_with(|cache| match cache[index].get() {
            Some((cached, shape)) if cached == id => shape,
            _ => {
                let shape = compute();
                cache[index].set(Some((id, shape)));
                shape
            }
        })
        // A thread being torn down: no cache.
        .unwrap_or_else(|_| compute())
}

/// Takes the bits a `TypeId` hashes (it is a hash already).
struct TypeBits(u64);

impl Hasher for TypeBits {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, bits: u64) {
        self.0 ^= bits;
    }
}

/// The fingerprint of a task taking `args` and returning `output`
/// (type names as `type_name` gives them).
pub(crate) fn of_names(args: &str, output: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |piece: &str| {
        for &b in piece.as_bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    visit(args, &mut feed);
    feed(" -> ");
    visit(output, &mut feed);
    hash
}

/// `name` with module paths stripped and spaces removed, as the
/// fingerprint sees it: `alloc::vec::Vec<u8>` is `Vec<u8>`.
pub(crate) fn stripped(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    visit(name, &mut |piece| out.push_str(piece));
    out
}

/// Calls `keep` with the pieces of `name` that remain once every path
/// segment followed by `::` and every space is dropped.
fn visit(name: &str, keep: &mut impl FnMut(&str)) {
    let bytes = name.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        if i > start {
            if bytes[i..].starts_with(b"::") {
                i += 2; // a module (or type) path segment: dropped
            } else {
                keep(&name[start..i]);
            }
            continue;
        }
        let c = bytes[i];
        if c != b' ' {
            keep(&name[i..i + 1]);
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::{of_names, stripped};

    #[test]
    fn module_paths_and_spaces_are_stripped() {
        assert_eq!(stripped("alloc::string::String"), "String");
        assert_eq!(stripped("alloc::vec::Vec<u8>"), "Vec<u8>");
        assert_eq!(stripped("(u8, u8, f64)"), "(u8,u8,f64)");
        assert_eq!(
            stripped("core::option::Option<(alloc::string::String, usize)>"),
            "Option<(String,usize)>"
        );
        assert_eq!(
            stripped("std::collections::hash::map::HashMap<my_app::jobs::Key, [u32; 4]>"),
            "HashMap<Key,[u32;4]>"
        );
        assert_eq!(stripped("()"), "()");
        assert_eq!(stripped("import_worker::Stats"), "Stats");
    }

    #[test]
    fn the_cached_fingerprint_is_the_computed_one() {
        type A = crate::ImportedTask<(String, usize), Vec<u8>>;
        type B = crate::ImportedTask<Vec<u8>, ()>;
        for _ in 0..3 {
            assert_eq!(super::of::<A>(), of_names("(String, usize)", "Vec<u8>"));
            assert_eq!(super::of::<B>(), of_names("Vec<u8>", "()"));
        }
    }

    #[test]
    fn a_mirror_in_another_module_matches() {
        assert_eq!(
            of_names("alloc::vec::Vec<u8>", "import_worker::Stats"),
            of_names("alloc::vec::Vec<u8>", "host::mirror::Stats"),
        );
    }

    #[test]
    fn other_types_differ() {
        let worker = of_names("alloc::vec::Vec<u8>", "import_worker::Stats");
        assert_ne!(
            worker,
            of_names("alloc::string::String", "import_worker::Stats")
        );
        assert_ne!(worker, of_names("alloc::vec::Vec<u8>", "(u8, u8, f64)"));
        assert_ne!(worker, of_names("alloc::vec::Vec<u8>", "host::WorkerStats"));
        // The argument and the output are told apart.
        assert_ne!(of_names("u32", "()"), of_names("()", "u32"));
    }
}
