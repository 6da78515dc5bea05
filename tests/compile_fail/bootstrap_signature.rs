// A bootstrap takes its data and/or a `&BootContext` and returns `()` or
// `Result<(), E>`: the errors point at what does not fit.
#[knitting::bootstrap]
fn returns_a_value(limit: u64) -> u64 {
    limit
}

#[knitting::bootstrap]
fn two_data_parameters(a: u64, b: u64) {
    let _ = (a, b);
}

// The data crosses to worker processes: it must be a serde type.
struct NotSerde;

#[knitting::bootstrap]
fn data_without_serde(data: NotSerde) {
    let _ = data;
}

fn main() {}
