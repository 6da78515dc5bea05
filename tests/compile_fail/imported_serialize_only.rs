// An imported task's declared types must be serde types both ways.
#[derive(serde::Serialize)]
struct Query {
    text: String,
}

const SEARCH: knitting::ImportedTask<Query, u32> = knitting::ImportedTask::new("search");

fn main() {
    let pool = knitting::Pool::builder().processes(1).build().unwrap();
    let _ = pool.call(SEARCH, Query { text: "x".into() });
}
