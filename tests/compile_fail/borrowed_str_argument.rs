// A task's arguments are moved to a worker: a borrowed `&str` cannot be,
// and the error points at the parameter.
#[knitting::task]
fn count(text: &str) -> usize {
    text.len()
}

fn main() {}
