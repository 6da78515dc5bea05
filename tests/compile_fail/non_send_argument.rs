// A task's arguments move to a worker thread or process: they must be `Send`.
#[knitting::task]
fn shared(v: std::rc::Rc<i32>) -> i32 {
    *v
}

fn main() {}
