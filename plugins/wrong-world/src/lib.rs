//! A component of the wrong world: it exports `describe` but nothing of `xjp:billing`.

wit_bindgen::generate!({ world: "other", path: "wit" });

struct Other;

impl Guest for Other {
    fn describe() -> String {
        "I am not a billing plugin".into()
    }
}

export!(Other);
