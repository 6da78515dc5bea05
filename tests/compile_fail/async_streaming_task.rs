// A streaming task is a plain `fn`: its `send` waits for the reader.
#[knitting::task]
async fn lines(text: String, out: knitting::Sender<String>) {
    for line in text.lines() {
        let _ = out.send(line.to_owned());
    }
}

fn main() {}
